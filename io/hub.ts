/** Hugging Face Hub references (`hf:ORG/NAME[@REV]`). */

/** A parsed `hf:ORG/NAME[@REV]` reference. */
export interface HubRef {
  readonly repo: string;
  readonly revision: string;
}

/** Parses `hf:ORG/NAME[@REV]`; undefined for anything else (a local path). */
export function parseHubRef(value: string): HubRef | undefined {
  if (!value.startsWith("hf:")) return undefined;
  const m = value.slice(3).match(/^([\w.-]+\/[\w.-]+)(?:@([\w./-]+))?$/);
  if (!m) throw new Error(`bad hub reference "${value}" (expected hf:ORG/NAME or hf:ORG/NAME@REVISION)`);
  return { repo: m[1], revision: m[2] ?? "main" };
}

/** Downloads a model into the cache and returns its directory. */
export function downloadModel(ref: HubRef): Promise<string> {
  return Promise.reject(new Error(`hf:${ref.repo}: hub download is not available yet`));
}
