/**
 * The replay command: replays an allocation trace (JSON Lines, docs/replay.md)
 * through one of the kernel's allocators and prints one JSON line per
 * operation.
 *
 *     deno run -R mm/replay.ts vmem   FILE     # FILE may be - for standard input
 *     deno run -R mm/replay.ts pglist FILE
 *     deno run -R mm/replay.ts vmem-freebsd FILE   # FreeBSD's vmem (docs/replay-freebsd.md)
 *     bun mm/replay.ts vmem FILE
 *
 * @module
 */

import { readFileSync } from "node:fs";
import process from "node:process";
import { REPLAYERS, replayText } from "./replayer.ts";

function main(args: string[]): number {
  const [kind, file] = args;
  const make = kind === undefined ? undefined : REPLAYERS[kind];
  if (make === undefined || file === undefined || args.length !== 2) {
    process.stderr.write(
      "usage: replay.ts vmem|pglist|vmem-freebsd FILE   (FILE may be - for standard input)\n",
    );
    return 2;
  }
  let text: string;
  try {
    text = readFileSync(file === "-" ? 0 : file, "utf8");
  } catch (e) {
    process.stderr.write(`replay: cannot read ${file}: ${(e as Error).message}\n`);
    return 2;
  }
  const out: string[] = [];
  replayText(text, make(), (line) => out.push(line));
  out.push("");
  process.stdout.write(out.join("\n"));
  return 0;
}

if (import.meta.main) process.exitCode = main(process.argv.slice(2));
