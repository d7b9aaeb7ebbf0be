/**
 * The replay command: replays an allocation trace (JSON Lines, docs/replay.md)
 * through one of the kernel's allocators and prints one JSON line per
 * operation; or replays a vmem trace under another policy; or compares
 * policies on one trace.
 *
 *     deno run -R mm/replay.ts vmem   FILE     # FILE may be - for standard input
 *     deno run -R mm/replay.ts pglist FILE
 *     deno run -R mm/replay.ts vmem --policy bestfit FILE
 *     deno run -R mm/replay.ts vmem --compare instantfit,bestfit FILE [--json] [--svg OUT]
 *     bun mm/replay.ts vmem FILE
 *
 * A bad command line, an unknown policy or a file that cannot be read or
 * written is one line on standard error and exit status 2, with nothing
 * written.
 *
 * @module
 */

import { readFileSync } from "node:fs";
import process from "node:process";
import { parseArgs } from "node:util";
import { type Replayer, REPLAYERS, replayText } from "./replayer.ts";
import { comparedPolicy, kindPolicy, PolicyReplayer, REPLAY_POLICIES } from "./replay_policy.ts";
import { compareTrace, comparisonJson, comparisonTable } from "./replay_compare.ts";
import { comparisonSvg } from "./replay_picture.ts";
import { checkOutputs, OutputError, writeOutput } from "./cli_files.ts";
import { KernelError } from "./errors.ts";

function usage(): string {
  const kinds = Object.keys(REPLAYERS).join("|");
  const policies = Object.keys(REPLAY_POLICIES).join(",");
  return [
    `usage: replay.ts ${kinds} FILE   (FILE may be - for standard input)`,
    `       replay.ts KIND --policy NAME FILE`,
    `       replay.ts KIND --compare P1,P2,... FILE [--json] [--svg OUT]`,
    `policies: ${policies}`,
  ].join("\n");
}

/** A bad command line: one line naming what is wrong. */
class UsageError extends Error {}

interface Command {
  kind: string;
  file: string;
  policy?: string;
  compare?: string[];
  json: boolean;
  svg?: string;
}

function parse(args: string[]): Command {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      strict: true,
      allowPositionals: true,
      options: {
        policy: { type: "string" },
        compare: { type: "string" },
        json: { type: "boolean" },
        svg: { type: "string" },
      },
    });
  } catch (e) {
    throw new UsageError((e as Error).message.split("\n")[0]!);
  }
  const v = parsed.values;
  const [kind, file, ...extra] = parsed.positionals;
  if (kind === undefined || file === undefined || extra.length > 0) {
    throw new UsageError("expected KIND and FILE");
  }
  if (!Object.hasOwn(REPLAYERS, kind)) {
    throw new UsageError(
      `unknown kind ${JSON.stringify(kind)} (one of ${Object.keys(REPLAYERS).join(", ")})`,
    );
  }
  if (v.policy !== undefined && v.compare !== undefined) {
    throw new UsageError("--policy and --compare do not go together");
  }
  if (v.compare === undefined && (v.json || v.svg !== undefined)) {
    throw new UsageError(`${v.json ? "--json" : "--svg"} goes with --compare`);
  }
  const cmd: Command = { kind, file, json: v.json ?? false };
  if (v.policy !== undefined) {
    try {
      kindPolicy(kind, v.policy);
    } catch (e) {
      throw new UsageError(`--policy: ${(e as Error).message}`);
    }
    cmd.policy = v.policy;
  }
  if (v.compare !== undefined) {
    if (!Object.values(REPLAY_POLICIES).some((p) => p.kind === kind)) {
      throw new UsageError(`--compare: ${kind} traces have no policies`);
    }
    // Each name as the trace's kind reads it, so that `vmem-freebsd
    // --compare bestfit,firstfit` compares FreeBSD's policies.
    const names = v.compare.split(",").map((s) => {
      try {
        return comparedPolicy(kind, s.trim());
      } catch (e) {
        throw new UsageError(`--compare: ${(e as Error).message}`);
      }
    });
    for (const name of names) {
      if (names.indexOf(name) !== names.lastIndexOf(name)) {
        throw new UsageError(`--compare: policy ${JSON.stringify(name)} is named twice`);
      }
    }
    cmd.compare = names;
    if (v.svg !== undefined) {
      if (v.svg === "" || v.svg.startsWith("-")) {
        throw new UsageError(`--svg: expected a file name, got ${JSON.stringify(v.svg)}`);
      }
      cmd.svg = v.svg;
    }
  }
  return cmd;
}

async function main(args: string[]): Promise<number> {
  if (args.length === 0) {
    process.stderr.write(usage() + "\n");
    return 2;
  }
  let cmd: Command;
  try {
    cmd = parse(args);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`replay.ts: ${e.message} (replay.ts alone prints the usage)\n`);
    return 2;
  }
  try {
    if (cmd.svg !== undefined) await checkOutputs([cmd.svg]);
  } catch (e) {
    if (!(e instanceof OutputError)) throw e;
    process.stderr.write(`replay.ts: ${e.message}\n`);
    return 2;
  }
  let text: string;
  try {
    text = readFileSync(cmd.file === "-" ? 0 : cmd.file, "utf8");
  } catch (e) {
    process.stderr.write(`replay.ts: cannot read ${cmd.file}: ${(e as Error).message}\n`);
    return 2;
  }
  if (cmd.compare !== undefined) {
    let c;
    try {
      c = compareTrace(text, cmd.compare);
    } catch (e) {
      if (!(e instanceof KernelError)) throw e;
      process.stderr.write(`replay.ts: ${e.message}\n`);
      return 2;
    }
    for (const r of c.runs) {
      if (r.refusedCount === 0) continue;
      const first = r.refused[0]!;
      process.stderr.write(
        `replay.ts: ${r.figures.policy}: ${r.refusedCount} lines refused ` +
          `(first: line ${first.line}, ${first.code}: ${first.message})\n`,
      );
    }
    try {
      if (cmd.svg !== undefined) writeOutput(cmd.svg, comparisonSvg(c, cmd.file));
    } catch (e) {
      if (!(e instanceof OutputError)) throw e;
      process.stderr.write(`replay.ts: ${e.message}\n`);
      return 2;
    }
    process.stdout.write((cmd.json ? comparisonJson(c) : comparisonTable(c).join("\n")) + "\n");
    return 0;
  }
  const make = REPLAYERS[cmd.kind]!;
  const policy = cmd.policy === undefined ? undefined : kindPolicy(cmd.kind, cmd.policy);
  const replayer: Replayer = policy === undefined
    ? make()
    : new PolicyReplayer(make(), policy.word, policy.quantumCaches);
  const out: string[] = [];
  replayText(text, replayer, (line) => out.push(line));
  out.push("");
  process.stdout.write(out.join("\n"));
  return 0;
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2));
