/**
 * A loopback server that serves a fixture directory the way the Hugging Face Hub does: the model
 * tree API (`/api/models/ORG/NAME/tree/REV`) and the resolve endpoint
 * (`/ORG/NAME/resolve/REV/FILE`, with the commit and ETag headers the Hub sends).
 */
export interface HubServer {
  readonly url: string;
  readonly requests: string[];
  close(): Promise<void>;
}

const COMMIT = "0123456789abcdef0123456789abcdef01234567";

async function sha256(bytes: Uint8Array): Promise<string> {
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as BufferSource));
  return [...hash].map((b) => b.toString(16).padStart(2, "0")).join("");
}

const notFound = (code: string) =>
  new Response(code, { status: 404, headers: { "x-error-code": code } });

/** Serves `dir` as the model repository `repo` at the given revisions (branch names). */
export function serveHub(
  repo: string,
  dir: string,
  revisions: readonly string[] = ["main"],
  options: { infoApi?: boolean } = {},
): HubServer {
  const files = new Map<string, Uint8Array>();
  for (const e of Deno.readDirSync(dir)) {
    if (e.isFile) files.set(e.name, Deno.readFileSync(`${dir}/${e.name}`));
  }
  const requests: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    requests.push(`${req.method} ${url.pathname}`);
    if (options.infoApi === false && url.pathname.startsWith("/api/")) return notFound("NotFound");
    const info = url.pathname.match(/^\/api\/models\/(.+)\/revision\/([^/]+)$/);
    if (info && info[1] === repo) {
      if (!revisions.includes(decodeURIComponent(info[2]))) return notFound("RevisionNotFound");
      return Response.json({
        _id: "0",
        id: repo,
        private: false,
        sha: COMMIT,
        siblings: [...files.keys()].map((rfilename) => ({ rfilename })),
      });
    }
    const paths = url.pathname.match(/^\/api\/models\/(.+)\/paths-info\/([^/]+)$/);
    if (paths && paths[1] === repo && req.method === "POST") {
      const body = await req.json() as { paths: string[] };
      return Response.json(
        await Promise.all(
          body.paths.filter((p) => files.has(p)).map(async (path) => ({
            type: "file",
            path,
            size: files.get(path)!.length,
            oid: (await sha256(files.get(path)!)).slice(0, 40),
            lastCommit: { id: COMMIT, title: "fixture", date: "2026-01-01T00:00:00Z" },
          })),
        ),
      );
    }
    const resolve = url.pathname.match(/^\/(.+)\/resolve\/([^/]+)\/(.+)$/);
    const known = resolve?.[2] === COMMIT ||
      revisions.includes(decodeURIComponent(resolve?.[2] ?? ""));
    if (resolve && resolve[1] === repo && known) {
      const bytes = files.get(decodeURIComponent(resolve[3]));
      if (!bytes) {
        return new Response("Entry not found", {
          status: 404,
          headers: { "x-error-code": "EntryNotFound" },
        });
      }
      const headers: Record<string, string> = {
        "etag": `"${await sha256(bytes)}"`,
        "x-repo-commit": COMMIT,
        "accept-ranges": "bytes",
      };
      // The library asks for byte 0 first to learn the size (from content-range) and the ETag.
      const range = options.infoApi === false
        ? undefined
        : req.headers.get("range")?.match(/^bytes=(\d+)-(\d*)$/);
      if (range) {
        const from = Number(range[1]);
        const to = range[2] === ""
          ? bytes.length - 1
          : Math.min(Number(range[2]), bytes.length - 1);
        headers["content-range"] = `bytes ${from}-${to}/${bytes.length}`;
        return new Response(bytes.slice(from, to + 1), { status: 206, headers });
      }
      return new Response(req.method === "HEAD" ? null : bytes as BodyInit, { headers });
    }
    return new Response("Repository not found", {
      status: 404,
      headers: { "x-error-code": "RepoNotFound" },
    });
  });
  const addr = server.addr as Deno.NetAddr;
  return { url: `http://127.0.0.1:${addr.port}`, requests, close: () => server.shutdown() };
}
