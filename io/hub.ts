/**
 * Models from the Hugging Face Hub: `hf:ORG/NAME[@REV]` is downloaded with
 * `@huggingface/hub` into a local cache (`models--ORG--NAME/snapshots/COMMIT`
 * as the Hub names them, under `$WGRAD_CACHE/hub` or `~/.cache/wgrad/hub`) and used from there. Only the
 * files a model needs are fetched (config, tokenizer, safetensors weights).
 * `HF_ENDPOINT` selects the server, `HF_TOKEN` authenticates. Offline, a
 * model already in the cache is used; otherwise the error says how to pass a
 * local directory instead.
 *
 * @module
 */
// @huggingface/hub (about 5 MB with its dependencies) is loaded only when a model is downloaded,
// from a specifier in a variable, so that importing mod.ts does not fetch it.
const HUB_PACKAGE = "npm:@huggingface/hub@2.17.5";

/** The two things used from @huggingface/hub (typed here: a type import would fetch it too). */
interface HubModule {
  modelInfo(params: {
    name: string;
    revision?: string;
    hubUrl?: string;
    accessToken?: string;
    additionalFields?: string[];
  }): Promise<{ sha?: unknown; filePaths?: unknown }>;
  HubApiError: new (...args: never[]) => Error & { statusCode?: number };
}
let hubModule: Promise<HubModule> | undefined;
const loadHub = () => hubModule ??= import(HUB_PACKAGE) as Promise<HubModule>;

/** An HTTP error answered by the Hub (its status code), as opposed to a network failure. */
function hubStatus(e: unknown, hub: HubModule): number | undefined {
  return e instanceof hub.HubApiError ? e.statusCode : undefined;
}
import { dirname } from "node:path";
import { writeFileAtomic } from "./atomic.ts";

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
 * import { strictEqual } from "node:assert/strict";
 * import { hubCacheDir } from "./hub.ts";
 * strictEqual(hubCacheDir().endsWith("/hub"), true);
 * ```
 */
export function hubCacheDir(): string {
  const root = Deno.env.get("WGRAD_CACHE") ??
    `${Deno.env.get("XDG_CACHE_HOME") ?? `${Deno.env.get("HOME") ?? "."}/.cache`}/wgrad`;
  return `${root}/hub`;
}

/** The files of a model repository a model needs. */
const WANTED = /^([^/]+\.json|[^/]+\.safetensors|tokenizer\.model|vocab\.txt|merges\.txt)$/;
/** Without a file list (a server with only the resolve endpoint): these, if present. */
const LIKELY = [
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "generation_config.json",
  "model.safetensors",
  "model.safetensors.index.json",
];

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

/** The commit and file list from the model info API, or nothing if the server has no such API. */
async function repoInfo(
  ref: HubRef,
  hubUrl: string,
  credentials: { accessToken?: string },
): Promise<{ commit?: string; paths?: string[] }> {
  const hub = await loadHub();
  try {
    const info = await hub.modelInfo({
      name: ref.repo,
      revision: ref.revision,
      hubUrl,
      ...credentials,
      additionalFields: ["sha", "filePaths"],
    });
    const sha = String(info.sha ?? "");
    return {
      commit: /^[0-9a-f]{40}$/.test(sha) ? sha : undefined,
      paths: (info.filePaths as string[] | undefined)?.filter((p) => WANTED.test(p)),
    };
  } catch (e) {
    // An HTTP error: the server answered; try the resolve endpoint alone. Network errors propagate.
    const status = hubStatus(e, hub);
    if (status !== undefined && status !== 401 && status !== 403) return {};
    throw e;
  }
}

/**
 * Downloads a model's config, tokenizer and safetensors files into the cache
 * and returns the local directory that holds them. The file list and commit
 * come from the Hub's model info API (`@huggingface/hub`); the files from
 * its resolve endpoint (`/ORG/NAME/resolve/REV/FILE`). A server without the
 * info API still works: the usual file names are tried.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { downloadModel } from "./hub.ts";
 * // tests/io/hub_test.ts downloads from a loopback server that serves a fixture like the Hub.
 * strictEqual(typeof downloadModel, "function");
 * ```
 */
export async function downloadModel(ref: HubRef, options: DownloadOptions = {}): Promise<string> {
  const hubUrl = (options.endpoint ?? Deno.env.get("HF_ENDPOINT") ?? "https://huggingface.co")
    .replace(/\/$/, "");
  const cacheDir = options.cacheDir ?? hubCacheDir();
  const accessToken = options.token ?? Deno.env.get("HF_TOKEN") ?? undefined;
  const credentials = accessToken ? { accessToken } : {};
  const headers: Record<string, string> = accessToken
    ? { authorization: `Bearer ${accessToken}` }
    : {};
  const where = `hf:${ref.repo}@${ref.revision}`;
  const offline = async (e: Error) => {
    const local = await cached(cacheDir, ref);
    if (local !== undefined) return local;
    throw new Error(
      `${where}: cannot reach ${hubUrl} (${e.message.split("\n")[0]}); ` +
        `offline, download the model elsewhere and pass its directory: --base path/to/model ` +
        `(config.json, model.safetensors, tokenizer.json)`,
    );
  };
  let info: { commit?: string; paths?: string[] };
  try {
    info = await repoInfo(ref, hubUrl, credentials);
  } catch (e) {
    if (hubStatus(e, await loadHub()) !== undefined) {
      throw new Error(`${where}: ${hubUrl} refused access (${(e as Error).message})`);
    }
    return await offline(e as Error);
  }
  // Fetched files are kept in memory until all arrived, then written: no partial snapshot.
  const files = new Map<string, Uint8Array>();
  let commit = info.commit ?? (/^[0-9a-f]{40}$/.test(ref.revision) ? ref.revision : undefined);
  const revision = encodeURIComponent(commit ?? ref.revision);
  const fetchFile = async (path: string, required: boolean): Promise<boolean> => {
    const url = `${hubUrl}/${ref.repo}/resolve/${revision}/${path}`;
    let response: Response;
    try {
      response = await fetch(url, { headers });
    } catch (e) {
      throw new Error(`${where}: cannot download ${path} (${(e as Error).message.split("\n")[0]})`);
    }
    if (response.status === 404 && !required) {
      await response.body?.cancel();
      return false;
    }
    if (!response.ok) {
      await response.body?.cancel();
      const what = response.status === 404 ? "not found" : `HTTP ${response.status}`;
      throw new Error(`${where}: ${path}: ${what} at ${url}`);
    }
    commit ??= response.headers.get("x-repo-commit") ?? undefined;
    files.set(path, new Uint8Array(await response.arrayBuffer()));
    return true;
  };
  try {
    await fetchFile("config.json", true);
  } catch (e) {
    if (info.paths === undefined && /cannot download/.test((e as Error).message)) {
      return await offline(e as Error);
    }
    throw e;
  }
  if (info.paths !== undefined) {
    for (const path of info.paths) if (path !== "config.json") await fetchFile(path, true);
  } else {
    for (const path of LIKELY) await fetchFile(path, false);
    const index = files.get("model.safetensors.index.json");
    if (index) {
      const map = JSON.parse(new TextDecoder().decode(index)).weight_map ?? {};
      for (const shard of new Set(Object.values(map) as string[])) await fetchFile(shard, true);
    }
  }
  const repoDir = `${cacheDir}/models--${ref.repo.replace("/", "--")}`;
  const snapshot = `${repoDir}/snapshots/${commit ?? ref.revision}`;
  for (const [path, bytes] of files) {
    await Deno.mkdir(dirname(`${snapshot}/${path}`), { recursive: true });
    await writeFileAtomic(`${snapshot}/${path}`, bytes);
  }
  // As the Hub's cache does: refs/REV names the snapshot, so offline runs find it.
  await Deno.mkdir(dirname(`${repoDir}/refs/${ref.revision}`), { recursive: true });
  await writeFileAtomic(`${repoDir}/refs/${ref.revision}`, commit ?? ref.revision);
  return snapshot;
}
