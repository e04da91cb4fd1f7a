/**
 * Models from the Hugging Face Hub: `hf:ORG/NAME[@REV]` is downloaded with
 * `@huggingface/hub` into a local cache (the Hub's own cache layout, under
 * `$WGRAD_CACHE/hub` or `~/.cache/wgrad/hub`) and used from there. Only the
 * files a model needs are fetched (config, tokenizer, safetensors weights).
 * `HF_ENDPOINT` selects the server, `HF_TOKEN` authenticates. Offline, a
 * model already in the cache is used; otherwise the error says how to pass a
 * local directory instead.
 *
 * @module
 */
import { downloadFileToCacheDir, modelInfo } from "@huggingface/hub";

/**
 * A parsed `hf:ORG/NAME[@REV]` reference.
 *
 * @example
 * ```ts
 * import type { HubRef } from "./hub.ts";
 * const ref: HubRef = { repo: "openai-community/gpt2", revision: "main" };
 * ```
 */
export interface HubRef {
  /** `ORG/NAME`. */
  readonly repo: string;
  /** Branch, tag or commit (default `main`). */
  readonly revision: string;
}

/**
 * Parses `hf:ORG/NAME[@REV]`; undefined for anything else (a local path).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseHubRef } from "./hub.ts";
 * assert.deepEqual(parseHubRef("hf:Qwen/Qwen2-0.5B@v1"), { repo: "Qwen/Qwen2-0.5B", revision: "v1" });
 * assert.equal(parseHubRef("models/base.safetensors"), undefined);
 * ```
 */
export function parseHubRef(value: string): HubRef | undefined {
  if (!value.startsWith("hf:")) return undefined;
  const m = value.slice(3).match(/^([\w.-]+\/[\w.-]+)(?:@([\w./-]+))?$/);
  if (!m) {
    throw new Error(`bad hub reference "${value}" (expected hf:ORG/NAME or hf:ORG/NAME@REVISION)`);
  }
  return { repo: m[1], revision: m[2] ?? "main" };
}

/**
 * The cache directory: `$WGRAD_CACHE/hub`, else `~/.cache/wgrad/hub`.
 *
 * @example
 * ```ts
 * import { hubCacheDir } from "./hub.ts";
 * console.log(hubCacheDir().endsWith("/hub")); // true
 * ```
 */
export function hubCacheDir(): string {
  const root = Deno.env.get("WGRAD_CACHE") ??
    `${Deno.env.get("XDG_CACHE_HOME") ?? `${Deno.env.get("HOME") ?? "."}/.cache`}/wgrad`;
  return `${root}/hub`;
}

/** The files of a model repository a model needs. */
const WANTED = /^([^/]+\.json|[^/]+\.safetensors|tokenizer\.model|vocab\.txt|merges\.txt)$/;

/** Options of {@link downloadModel} (defaults from the environment). */
export interface DownloadOptions {
  /** Server (default `$HF_ENDPOINT` or https://huggingface.co). */
  readonly endpoint?: string;
  /** Cache directory (default {@link hubCacheDir}). */
  readonly cacheDir?: string;
  /** Access token (default `$HF_TOKEN`). */
  readonly token?: string;
}

async function cached(cacheDir: string, ref: HubRef): Promise<string | undefined> {
  const repoDir = `${cacheDir}/models--${ref.repo.replace("/", "--")}`;
  const commit = /^[0-9a-f]{40}$/.test(ref.revision)
    ? ref.revision
    : await Deno.readTextFile(`${repoDir}/refs/${ref.revision}`).then((s) => s.trim(), () => "");
  const dir = `${repoDir}/snapshots/${commit}`;
  const ok = commit !== "" && await Deno.stat(`${dir}/config.json`).then(() => true, () => false);
  return ok ? dir : undefined;
}

/**
 * Downloads a model's config, tokenizer and safetensors files into the cache
 * and returns the local directory that holds them.
 *
 * @example
 * ```ts
 * import { downloadModel } from "./hub.ts";
 * // tests/io/hub_test.ts downloads from a loopback server that serves a fixture like the Hub.
 * console.log(typeof downloadModel); // "function"
 * ```
 */
export async function downloadModel(ref: HubRef, options: DownloadOptions = {}): Promise<string> {
  const hubUrl = (options.endpoint ?? Deno.env.get("HF_ENDPOINT") ?? "https://huggingface.co")
    .replace(/\/$/, "");
  const cacheDir = options.cacheDir ?? hubCacheDir();
  const accessToken = options.token ?? Deno.env.get("HF_TOKEN") ?? undefined;
  const params = {
    repo: { type: "model" as const, name: ref.repo },
    revision: ref.revision,
    hubUrl,
  };
  const credentials = accessToken ? { accessToken } : {};
  const where = `hf:${ref.repo}@${ref.revision}`;
  let paths: string[], commit: string;
  try {
    // The commit first: every file then lands in that one snapshot directory.
    const info = await modelInfo({
      name: ref.repo,
      revision: ref.revision,
      hubUrl,
      ...credentials,
      additionalFields: ["sha", "filePaths"],
    });
    commit = String(info.sha);
    paths = (info.filePaths ?? []).filter((p: string) => WANTED.test(p));
  } catch (e) {
    const local = await cached(cacheDir, ref);
    if (local !== undefined) return local;
    throw new Error(
      `${where}: cannot reach ${hubUrl} (${(e as Error).message.split("\n")[0]}); ` +
        `offline, download the model elsewhere and pass its directory: --base path/to/model ` +
        `(config.json, model.safetensors, tokenizer.json)`,
    );
  }
  if (!/^[0-9a-f]{40}$/.test(commit)) throw new Error(`${where}: the server sent no commit id`);
  if (!paths.includes("config.json")) {
    throw new Error(`${where}: the repository has no config.json`);
  }
  const repoDir = `${cacheDir}/models--${ref.repo.replace("/", "--")}`;
  let dir = "";
  // The library logs each download with console.debug, which would mix into --json output.
  const debug = console.debug;
  console.debug = () => {};
  try {
    for (const path of paths) {
      const local = await downloadFileToCacheDir({
        ...params,
        revision: commit,
        ...credentials,
        path,
        cacheDir,
      })
        .catch((e: Error) => {
          throw new Error(`${where}: cannot download ${path}: ${e.message.split("\n")[0]}`);
        });
      if (path === "config.json") dir = local.slice(0, -"/config.json".length);
    }
  } finally {
    console.debug = debug;
  }
  // As the Hub's cache does: refs/REV names the commit, so offline runs find the snapshot.
  await Deno.mkdir(`${repoDir}/refs`, { recursive: true });
  await Deno.writeTextFile(`${repoDir}/refs/${ref.revision}`, commit);
  return dir;
}
