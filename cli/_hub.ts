/** `--base hf:ORG/NAME[@REV]`: a Hugging Face Hub model, downloaded into the local cache. */
import { downloadModel, parseHubRef } from "../io/hub.ts";

/** The local path of a `--base` value: itself, or the cached download of an `hf:` reference. */
export async function resolveBase(base: string): Promise<string> {
  const ref = parseHubRef(base);
  return ref === undefined ? base : await downloadModel(ref);
}
