// Relative path names inside archives and directories we write. Names come
// from untrusted zips, so anything that could escape the target directory or
// mean different things on different systems is refused.

/**
 * Throw unless `name` is a plain relative path of `/`-separated segments:
 * no empty, `.` or `..` segments, no leading `/`, no drive letter, no
 * backslash and no control characters.
 */
export function checkRelativePath(name: string, where: string): void {
  const reject = (why: string): never => {
    throw new Error(`${where}: unsafe path ${JSON.stringify(name)}: ${why}`);
  };
  if (name === "") reject("empty name");
  if (name.startsWith("/")) reject("absolute path");
  if (/^[A-Za-z]:/.test(name)) reject("drive letter");
  if (name.includes("\\")) reject("backslash in name");
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) reject("control character in name");
  if (!name.isWellFormed()) reject("lone surrogate in name");
  for (const segment of name.split("/")) {
    if (segment === "..") reject("'..' segment (path traversal)");
    if (segment === "." || segment === "") reject("empty or '.' segment");
  }
}
