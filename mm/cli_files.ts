/**
 * The output files of the commands (`boot.ts`, `mm/replay.ts`): each is
 * checked before the run starts, so a path that cannot be written costs a
 * one-line refusal instead of a whole run, and written when it ends, a write
 * that fails anyway being refused the same way. Command-side only (it uses
 * `node:fs`); the library never imports it.
 *
 * @module
 */

import { closeSync, openSync, unlinkSync, writeFileSync } from "node:fs";

/** An output file that cannot be written; the message names the path and why. */
export class OutputError extends Error {
  /** Creates the error with a one-line message. */
  constructor(message: string) {
    super(message);
    this.name = "OutputError";
  }
}

function why(e: unknown): string {
  const code = (e as { code?: unknown }).code;
  switch (code) {
    case "ENOENT":
      return "no such directory";
    case "EISDIR":
      return "it is a directory";
    case "ENOTDIR":
      return "a part of the path is not a directory";
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "ENOSPC":
      return "no space left on the device";
  }
  return String((e as Error).message ?? e).split("\n")[0]!;
}

/** Asks Deno (when it is the runtime) for write access to `file` alone. */
async function mayWrite(file: string): Promise<void> {
  const deno =
    (globalThis as { Deno?: { permissions: { request(d: object): Promise<{ state: string }> } } })
      .Deno;
  if (deno === undefined) return;
  const { state } = await deno.permissions.request({ name: "write", path: file });
  if (state !== "granted") {
    throw new OutputError(`no write access to ${file} (run with --allow-write=${file})`);
  }
}

/**
 * Checks that every path in `files` can be written: access granted (Deno),
 * the directory there, the path not a directory. A file that did not exist
 * is created empty; when any check fails those are removed again and an
 * {@link OutputError} names the path, so a refused command line leaves
 * nothing behind.
 */
export async function checkOutputs(files: readonly string[]): Promise<void> {
  const created: string[] = [];
  try {
    for (const f of files) {
      await mayWrite(f);
      let fd: number;
      try {
        fd = openSync(f, "wx");
        created.push(f);
      } catch (e) {
        if ((e as { code?: unknown }).code !== "EEXIST") {
          throw new OutputError(`cannot write ${f}: ${why(e)}`);
        }
        try {
          fd = openSync(f, "a");
        } catch (e2) {
          throw new OutputError(`cannot write ${f}: ${why(e2)}`);
        }
      }
      closeSync(fd);
    }
  } catch (e) {
    for (const f of created) unlinkSync(f);
    throw e;
  }
}

/** Writes `text` to `file`; an {@link OutputError} naming the path when that fails. */
export function writeOutput(file: string, text: string): void {
  try {
    writeFileSync(file, text);
  } catch (e) {
    throw new OutputError(`cannot write ${file}: ${why(e)}`);
  }
}
