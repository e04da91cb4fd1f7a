/** RFC 4180 CSV parsing with the line number of every record, for error messages. */

/** One CSV record: its fields and the 1-based line it starts on. */
export interface CsvRecord {
  readonly fields: string[];
  readonly line: number;
}

/**
 * Parses CSV text (RFC 4180: `,` separators, `"` quoting with `""` as an
 * escaped quote, fields that span lines inside quotes, CRLF or LF line ends).
 * Blank lines are skipped. Throws `where:LINE: ...` on a stray or unclosed quote.
 */
export function parseCsv(text: string, where: string): CsvRecord[] {
  const records: CsvRecord[] = [];
  let fields: string[] = [];
  let field = "";
  let line = 1, start = 1;
  let quoted = false; // inside a quoted field
  let wasQuoted = false; // the current field was quoted (only a separator may follow)
  let i = 0;
  const endField = () => {
    fields.push(field);
    field = "";
    wasQuoted = false;
  };
  const endRecord = () => {
    endField();
    // A blank line is one empty unquoted field: not a record.
    if (!(fields.length === 1 && fields[0] === "")) records.push({ fields, line: start });
    fields = [];
  };
  while (i < text.length) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
        wasQuoted = true;
      } else {
        if (c === "\n") line++;
        field += c;
      }
      i++;
      continue;
    }
    if (c === ",") endField();
    else if (c === "\n" || c === "\r") {
      endRecord();
      if (c === "\r" && text[i + 1] === "\n") i++;
      line++;
      start = line;
    } else if (c === '"') {
      if (field !== "" || wasQuoted) {
        throw new Error(
          `${where}:${line}: a quote inside an unquoted field (quote the field and double the quote)`,
        );
      }
      quoted = true;
    } else {
      if (wasQuoted) {
        throw new Error(
          `${where}:${line}: text after a closing quote (a field is either quoted or not)`,
        );
      }
      field += c;
    }
    i++;
  }
  if (quoted) throw new Error(`${where}:${start}: unclosed quote (the field never ends)`);
  if (field !== "" || fields.length > 0 || wasQuoted) endRecord();
  return records;
}
