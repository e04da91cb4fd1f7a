import assert from "node:assert/strict";
import fc from "fast-check";
import { loadDataFile, parseDataFile, splitData } from "../../data/files.ts";
import { parseCsv } from "../../data/_csv.ts";

const err = (text: string, where: string, re: RegExp, options = {}) =>
  assert.throws(() => parseDataFile(text, where, options), re);

Deno.test("data files", async (t) => {
  await t.step("jsonl classification: string and integer labels, any number of classes", () => {
    const d = parseDataFile(
      ['{"text":"a","label":"x"}', "", '{"text":"b","label":"z"}', '{"text":"c","label":"y"}'].join(
        "\n",
      ),
      "d.jsonl",
    );
    assert.equal(d.task, "classification");
    if (d.task !== "classification") return;
    assert.deepEqual(d.labels, ["x", "y", "z"]);
    assert.deepEqual(d.examples.map((e) => e.label), [0, 2, 1]);
    const n = parseDataFile('{"text":"a","label":10}\n{"text":"b","label":2}\n', "n.jsonl");
    assert.deepEqual(n.task === "classification" && n.labels, ["2", "10"]); // numeric order
  });

  await t.step("jsonl language modelling: text, or prompt + completion", () => {
    const d = parseDataFile('{"text":"doc"}\n{"prompt":"Q: ","completion":"A"}\r\n', "lm.jsonl");
    assert.deepEqual(d, {
      task: "lm",
      documents: [{ prompt: "", completion: "doc" }, { prompt: "Q: ", completion: "A" }],
    });
    // --task lm on labelled rows trains on the texts.
    const l = parseDataFile('{"text":"a","label":1}', "l.jsonl", { task: "lm" });
    assert.equal(l.task, "lm");
  });

  await t.step("errors name file, line and field", () => {
    err('{"text":"a","label":1}\n{"text":', "f.jsonl", /^Error: f.jsonl:2: bad JSON/);
    err("[1]", "f.jsonl", /f.jsonl:1: each line must be a JSON object, got an array/);
    err('{"text":"a","label":1}\n{"label":0}', "f.jsonl", /f.jsonl:2: missing field "text"/);
    err('{"text":"a","label":1}\n{"text":"b"}', "f.jsonl", /f.jsonl:2: missing field "label"/);
    err(
      '{"text":"a","label":1.5}',
      "f.jsonl",
      /f.jsonl:1: field "label" must be a string or an integer, got 1.5/,
    );
    err(
      '{"text":"a","label":true}',
      "f.jsonl",
      /field "label" must be a string or an integer, got boolean/,
    );
    err('{"text":"  ","label":1}', "f.jsonl", /f.jsonl:1: field "text" is empty/);
    err('{"text":"a","label":1}\n{"text":"b","label":1}', "f.jsonl", /one class only/);
    err('{"prompt":"a"}', "f.jsonl", /f.jsonl:1: missing field "completion"/);
    err('{"prompt":"a","completion":""}', "f.jsonl", /field "completion" is empty/);
    err("", "f.jsonl", /f.jsonl: no examples/);
    err("x", "f.parquet", /unknown data format "parquet"/);
    err("text,label\na,1\nb\n", "f.csv", /f.csv:3: 1 fields, the header has 2/);
    err(
      "body,label\na,1\n",
      "f.csv",
      /f.csv:1: no column "text" in the header \(columns: body, label/,
    );
    err('text,label\n"a,1\n', "f.csv", /f.csv:2: unclosed quote/);
    err(
      "text,kind\na,1\n",
      "f.csv",
      /f.csv:1: no column "topic" in the header \(columns: text, kind/,
      {
        labelColumn: "topic",
      },
    );
    // A label field named on purpose means classification: its absence is an error, not LM.
    err('{"text":"a"}', "f.jsonl", /f.jsonl:1: missing field "topic"/, { labelColumn: "topic" });
    err("text\nabc\n", "f.txt", /a .txt file is one document/, { task: "classification" });
    err(
      '{"text":"a","label":"q"}',
      "f.jsonl",
      /label "q" is not one of the model's classes \(neg, pos\)/,
      {
        labels: ["neg", "pos"],
      },
    );
  });

  await t.step("csv: RFC 4180 quoting, custom columns, CRLF, BOM", () => {
    const csv = '\uFEFFid,body,cls\r\n1,"say ""hi"",\r\nbye",b\r\n2,plain,a\r\n';
    const d = parseDataFile(csv, "c.csv", { textColumn: "body", labelColumn: "cls" });
    assert.deepEqual(d, {
      task: "classification",
      labels: ["a", "b"],
      examples: [{ text: 'say "hi",\r\nbye', label: 1 }, { text: "plain", label: 0 }],
    });
    // The error after a multi-line field names the record's own line.
    err('text,label\n"a\nb",1\nc\n', "m.csv", /m.csv:4: 1 fields/);
  });

  await t.step("csv round trip (property)", () => {
    const field = fc.string({ unit: fc.constantFrom("a", ",", '"', "\n", "\r\n", " ", "é") });
    fc.assert(
      fc.property(
        fc.array(fc.array(field, { minLength: 2, maxLength: 2 }), { minLength: 1 }),
        (rows) => {
          const quote = (s: string) => `"${s.replaceAll('"', '""')}"`;
          const text = rows.map((r) => r.map(quote).join(",")).join("\r\n");
          assert.deepEqual(parseCsv(text, "p.csv").map((r) => r.fields), rows);
        },
      ),
    );
  });

  await t.step("txt is one LM document; unlabelled rows for prediction", async () => {
    const dir = await Deno.makeTempDir();
    await Deno.writeTextFile(`${dir}/a.txt`, "line 1\nline 2\n");
    assert.deepEqual(await loadDataFile(`${dir}/a.txt`), {
      task: "lm",
      documents: [{ prompt: "", completion: "line 1\nline 2\n" }],
    });
    const u = parseDataFile('{"text":"a"}', "u.jsonl", { labels: ["x", "y"], unlabelled: true });
    assert.deepEqual(u.task === "classification" && u.examples, [{ text: "a", label: -1 }]);
    await assert.rejects(loadDataFile(`${dir}/none.csv`), /cannot read .*none.csv/);
  });

  await t.step("splits are deterministic and keep duplicates together", () => {
    const rows = Array.from({ length: 300 }, (_, i) => `{"text":"t${i % 150}","label":${i % 3}}`);
    const d = parseDataFile(rows.join("\n"), "s.jsonl", { task: "classification" });
    if (d.task !== "classification") throw new Error();
    const a = splitData(d), b = splitData({ ...d, examples: [...d.examples].reverse() });
    assert.deepEqual(new Set(a.test.map((e) => e.text)), new Set(b.test.map((e) => e.text)));
    const train = new Set(a.train.map((e) => e.text));
    for (const e of [...a.validation, ...a.test]) assert.ok(!train.has(e.text));
    assert.ok(a.validation.length > 0 && a.test.length > 0);
    const tiny = parseDataFile('{"text":"x"}\n{"text":"y"}', "t.jsonl");
    assert.deepEqual(
      splitData(tiny).train.length,
      2,
    );
  });
});
