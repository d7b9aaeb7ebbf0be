/**
 * One vmem trace replayed under several policies, and what each policy
 * cost: the library side of `mm/replay.ts vmem --compare P1,P2,... FILE`.
 *
 * Theory. The trace's own lines say how much it holds: each allocation that
 * returns an address adds its size, each accepted free takes its size back
 * (a free by id, the size of that allocation). That figure, "in use", is
 * the same under every policy while no allocation fails. What a policy
 * changes is how the arenas hold it: their spans, and the free segments in
 * them. The figures concern the measured arenas, defined at each moment as
 * the live arenas no other live arena imports from (the leaves, where the
 * trace's requests are served), leaving out identifier arenas unless every
 * leaf is one:
 *
 * - in use: bytes the trace's live allocations hold in the measured arenas;
 * - peak: the first operation after which in use is at its greatest (the
 *   last operation when nothing is ever in use);
 * - footprint: bytes in the measured arenas' spans, static and imported;
 * - free segments, largest free segment and fragmentation
 *   (1 - largest free / free bytes, 0 with nothing free) of the measured
 *   arenas' free segments taken together;
 * - failures: allocation lines answered `{"addr":null}`;
 * - nsPerOp: the wall time of replaying every line, the least of a few
 *   runs, over the number of lines; the policies take turns, so noise and
 *   the engine's warming fall on each alike.
 *
 * Each policy's trace is replayed 2 + `repeat` times with a fresh replayer:
 * once to follow in use and find the peak, once to walk the measured arenas
 * at regular steps (the series) and at the peak, and `repeat` times timed
 * with nothing else in the loop, the policies taking turns. A line refused under a policy is listed
 * with its code and counted; it changes nothing, as the format says.
 *
 * @module
 */

import { describe, KernelError } from "./errors.ts";
import { FigureTally } from "./fragmentation.ts";
import { group } from "./picture.ts";
import { PolicyReplayer, policyReplayer, replayPolicy } from "./replay_policy.ts";
import { type Replayer, REPLAYERS } from "./replayer.ts";

type Op = Record<string, unknown>;

/** What one policy cost, at the peak of the trace (the keys `--json` prints). */
export interface PolicyFigures {
  /** Policy name. */
  policy: string;
  /** Bytes the trace's allocations held at the peak. */
  peakInUse: number;
  /** Bytes in the measured arenas' spans at the peak. */
  peakFootprint: number;
  /** Free segments at the peak. */
  freeSegments: number;
  /** Largest free segment at the peak. */
  largestFree: number;
  /** 1 - largest free / free bytes at the peak; 0 with nothing free. */
  fragmentation: number;
  /** Allocation lines answered `{"addr":null}`. */
  failures: number;
  /** Nanoseconds per trace line, replaying the whole trace. */
  nsPerOp: number;
}

/** The measured arenas after some operation. */
export interface CompareSample {
  /** Operations carried out so far. */
  op: number;
  /** Bytes the trace's allocations hold. */
  inUse: number;
  /** Bytes in the measured arenas' spans. */
  footprint: number;
  /** Fragmentation of their free segments. */
  fragmentation: number;
}

/** An arena's segments as a walk gives them: `[type, start, size]`. */
export interface ArenaSegments {
  /** Arena name. */
  name: string;
  /** Spans, each followed by its segments. */
  segs: [string, number, number][];
}

/** A line refused under a policy. */
export interface RefusedLine {
  /** Line number in the trace text (from 1). */
  line: number;
  /** The error code. */
  code: string;
  /** The message. */
  message: string;
}

/** One policy's replay. */
export interface PolicyRun {
  /** The figures. */
  figures: PolicyFigures;
  /** Operations carried out at the peak. */
  peakOp: number;
  /** The measured arenas at regular steps through the trace (and at its end). */
  series: CompareSample[];
  /** The measured arenas' segments at the peak. */
  peakArenas: ArenaSegments[];
  /** The first refused lines (at most {@link REFUSED_LISTED}). */
  refused: RefusedLine[];
  /** Refused lines in all. */
  refusedCount: number;
}

/** A trace replayed under several policies. */
export interface Comparison {
  /** Operations (non-blank, non-comment lines) in the trace. */
  ops: number;
  /** One replay per policy, in the order asked. */
  runs: PolicyRun[];
}

/** How {@link compareTrace} measures. */
export interface CompareOptions {
  /** Points of each series (default 200). */
  points?: number;
  /** Timed replays per policy, taken in turns, the least counting (default 5). */
  repeat?: number;
}

/** Refused lines listed per policy; the rest are counted. */
export const REFUSED_LISTED = 20;

interface Entry {
  line: number;
  op: Op | null;
  code: string;
  message: string;
}

/** The trace's lines as operations (a line that is not a JSON object keeps its refusal). */
function entries(text: string): Entry[] {
  const out: Entry[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === "" || line.startsWith("#")) continue;
    let op: unknown;
    try {
      op = JSON.parse(line);
    } catch (e) {
      out.push({ line: i + 1, op: null, code: "BADJSON", message: (e as Error).message });
      continue;
    }
    if (typeof op !== "object" || op === null || Array.isArray(op)) {
      out.push({
        line: i + 1,
        op: null,
        code: "BADOP",
        message: "an operation must be a JSON object",
      });
    } else {
      out.push({ line: i + 1, op: op as Op, code: "", message: "" });
    }
  }
  return out;
}

interface ArenaUse {
  identifier: boolean;
  source: unknown;
  live: number;
}

/** Follows what the trace holds, from its lines and the answers they got. */
class TraceUse {
  readonly arenas = new Map<unknown, ArenaUse>();
  readonly #idSize = new Map<unknown, number>();
  measured: unknown[] = [];
  #measuredSet = new Set<unknown>();
  inUse = 0;

  /** Takes in an operation the replayer accepted, with its output. */
  after(op: Op, out: unknown): void {
    switch (op.op) {
      case "create": {
        const flags = op.flags;
        this.arenas.set(op.arena, {
          identifier: Array.isArray(flags) && flags.includes("identifier"),
          source: op.source ?? null,
          live: 0,
        });
        this.#remeasure();
        return;
      }
      case "set_import": {
        const a = this.arenas.get(op.arena);
        if (a !== undefined) a.source = op.source ?? null;
        this.#remeasure();
        return;
      }
      case "destroy":
        this.arenas.delete(op.arena);
        this.#remeasure();
        return;
      case "alloc":
      case "xalloc": {
        if (typeof (out as { addr?: unknown }).addr !== "number") return;
        const size = op.size as number;
        if ("id" in op) this.#idSize.set(op.id, size);
        this.#change(op.arena, size);
        return;
      }
      case "free":
      case "xfree": {
        const size = "size" in op ? op.size as number : this.#idSize.get(op.id) ?? 0;
        if ("id" in op) this.#idSize.delete(op.id);
        this.#change(op.arena, -size);
        return;
      }
    }
  }

  #change(arena: unknown, delta: number): void {
    const a = this.arenas.get(arena);
    if (a === undefined) return;
    a.live += delta;
    if (this.#measuredSet.has(arena)) this.inUse += delta;
  }

  #remeasure(): void {
    const sources = new Set<unknown>();
    for (const a of this.arenas.values()) if (a.source !== null) sources.add(a.source);
    const leaves = [...this.arenas.keys()].filter((n) => !sources.has(n));
    const memory = leaves.filter((n) => !this.arenas.get(n)!.identifier);
    this.measured = memory.length > 0 ? memory : leaves;
    this.#measuredSet = new Set(this.measured);
    this.inUse = 0;
    for (const n of this.measured) this.inUse += this.arenas.get(n)!.live;
  }
}

/** Applies one entry; returns the output, or null when the line was refused. */
function step(r: Replayer, e: Entry): unknown {
  if (e.op === null) return null;
  try {
    return r.apply(e.op);
  } catch (err) {
    if (err instanceof KernelError) return null;
    throw err;
  }
}

/** Walks the measured arenas: the sample, and the segments when `keep`. */
function measure(
  r: Replayer,
  use: TraceUse,
  op: number,
  keep: ArenaSegments[] | null,
): CompareSample {
  const t = new FigureTally();
  for (const name of use.measured) {
    const out = r.apply({ op: "walk", arena: name, types: ["span", "alloc", "free"] }) as {
      segs: [string, number, number][];
    };
    for (const [type, , size] of out.segs) if (type !== "alloc") t.add(type, size);
    keep?.push({ name: String(name), segs: out.segs });
  }
  const f = t.figures("");
  return { op, inUse: use.inUse, footprint: f.footprint, fragmentation: f.fragmentation };
}

/** Replays and measures the trace under `policy`; its time per line is left for {@link timeAll}. */
function runPolicy(policy: string, list: Entry[], points: number): PolicyRun {
  const n = list.length;
  // 1. Follow in use; find the peak; count failures and refusals.
  let r = policyReplayer(policy);
  let use = new TraceUse();
  let failures = 0;
  let refusedCount = 0;
  const refused: RefusedLine[] = [];
  let peak = n - 1;
  let peakInUse = 0;
  for (let i = 0; i < n; i++) {
    const e = list[i]!;
    let out: unknown = null;
    let code = e.code, message = e.message;
    if (e.op !== null) {
      try {
        out = r.apply(e.op);
      } catch (err) {
        if (!(err instanceof KernelError)) throw err;
        code = err.code;
        message = err.message;
      }
    }
    if (out === null) {
      if (refusedCount++ < REFUSED_LISTED) refused.push({ line: e.line, code, message });
      continue;
    }
    use.after(e.op!, out);
    if (
      (e.op!.op === "alloc" || e.op!.op === "xalloc") && (out as { addr: unknown }).addr === null
    ) {
      failures++;
    }
    if (use.inUse > peakInUse) {
      peakInUse = use.inUse;
      peak = i;
    }
  }

  // 2. Walk the measured arenas at regular steps and at the peak.
  r = policyReplayer(policy);
  use = new TraceUse();
  const every = Math.max(1, Math.ceil(n / points));
  const series: CompareSample[] = [];
  const peakArenas: ArenaSegments[] = [];
  let atPeak: CompareSample = { op: 0, inUse: 0, footprint: 0, fragmentation: 0 };
  let free = { segments: 0, largest: 0 };
  for (let i = 0; i < n; i++) {
    const e = list[i]!;
    const out = step(r, e);
    if (out !== null) use.after(e.op!, out);
    if (i === peak) {
      atPeak = measure(r, use, i + 1, peakArenas);
      free = freeOf(peakArenas);
    }
    if ((i + 1) % every === 0 || i === n - 1) series.push(measure(r, use, i + 1, null));
  }

  return {
    figures: {
      policy,
      peakInUse: atPeak.inUse,
      peakFootprint: atPeak.footprint,
      freeSegments: free.segments,
      largestFree: free.largest,
      fragmentation: round6(atPeak.fragmentation),
      failures,
      nsPerOp: 0,
    },
    peakOp: n === 0 ? 0 : peak + 1,
    series,
    peakArenas,
    refused,
    refusedCount,
  };
}

/**
 * Times whole replays with nothing else in the loop, one per policy in
 * turn, `repeat` rounds, keeping each policy's least: taking turns spreads
 * the machine's noise and the engine's warming over every policy alike.
 */
function timeAll(runs: PolicyRun[], list: Entry[], repeat: number): void {
  const n = list.length;
  const best = runs.map(() => Infinity);
  // Each policy's lines with the policy already written in, so the timed
  // loop is the replayer's alone.
  const rewritten = runs.map((r) => {
    const { word, quantumCaches } = replayPolicy(r.figures.policy);
    const rewrite = new PolicyReplayer({ apply: (op) => op }, word, quantumCaches);
    return list.map((e) => e.op === null ? e : { ...e, op: rewrite.apply(e.op) as Op });
  });
  for (let k = 0; k < repeat; k++) {
    runs.forEach((r, j) => {
      const timed = REPLAYERS[replayPolicy(r.figures.policy).kind]!();
      const ops = rewritten[j]!;
      let refused = 0;
      const t0 = performance.now();
      for (let i = 0; i < n; i++) {
        if (step(timed, ops[i]!) === null) refused++;
      }
      best[j] = Math.min(best[j]!, performance.now() - t0);
      // The timed replay must be the measured one: the same lines refused.
      if (refused !== r.refusedCount) {
        throw new KernelError(
          "CORRUPT",
          `compare: the timed replay of ${r.figures.policy} refused ${refused} lines, ` +
            `the measured one ${r.refusedCount}`,
        );
      }
    });
  }
  runs.forEach((r, j) => {
    r.figures.nsPerOp = n === 0 ? 0 : Math.round((best[j]! * 1e6) / n * 10) / 10;
  });
}

function freeOf(arenas: ArenaSegments[]): { segments: number; largest: number } {
  let segments = 0, largest = 0;
  for (const a of arenas) {
    for (const [type, , size] of a.segs) {
      if (type !== "free") continue;
      segments++;
      if (size > largest) largest = size;
    }
  }
  return { segments, largest };
}

function round6(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}

function count(name: string, v: unknown, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > 1e6) {
    throw new KernelError(
      "EINVAL",
      `${name} must be an integer in [1, 1000000], got ${describe(v)}`,
    );
  }
  return v;
}

/**
 * Replays the trace `text` under each policy in `policies` (names of
 * REPLAY_POLICIES) and measures each as the module text defines. Refuses an
 * empty list, an unknown or repeated name, or a bad option with EINVAL
 * before replaying anything.
 */
export function compareTrace(
  text: string,
  policies: readonly string[],
  options?: CompareOptions,
): Comparison {
  if (options === undefined) options = {};
  if (typeof text !== "string") {
    throw new KernelError("EINVAL", `the trace must be a string, got ${describe(text)}`);
  }
  if (!Array.isArray(policies) || policies.length === 0) {
    throw new KernelError("EINVAL", `policies must be a non-empty list, got ${describe(policies)}`);
  }
  for (let i = 0; i < policies.length; i++) {
    replayPolicy(policies[i]);
    if (policies.indexOf(policies[i]!) !== i) {
      throw new KernelError("EINVAL", `policy ${describe(policies[i])} is named twice`);
    }
  }
  const points = count("points", options.points, 200);
  const repeat = count("repeat", options.repeat, 5);
  const list = entries(text);
  const runs = policies.map((p) => runPolicy(p, list, points));
  timeAll(runs, list, repeat);
  return { ops: list.length, runs };
}

/** `{"policies":[...]}`: the figures of each policy, in the order compared. */
export function comparisonJson(c: Comparison): string {
  return JSON.stringify({ policies: c.runs.map((r) => r.figures) });
}

/** Column heads of the figures, in the order of {@link PolicyFigures}' keys. */
export const FIGURE_HEADS: readonly string[] = [
  "policy",
  "peak in use",
  "peak footprint",
  "free segs",
  "largest free",
  "fragmentation",
  "failures",
  "ns/op",
];

/** A policy's figures as the cells of a row, byte counts written by `size`. */
export function figureCells(f: PolicyFigures, size: (n: number) => string): string[] {
  return [
    f.policy,
    size(f.peakInUse),
    size(f.peakFootprint),
    group(f.freeSegments),
    size(f.largestFree),
    f.fragmentation.toFixed(4),
    group(f.failures),
    f.nsPerOp.toFixed(0),
  ];
}

/** The comparison as lines a person reads: one row per policy. */
export function comparisonTable(c: Comparison): string[] {
  const rows = c.runs.map((r) => figureCells(r.figures, group));
  const width = FIGURE_HEADS.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (cells: readonly string[]) =>
    cells.map((s, i) => i === 0 ? s.padEnd(width[i]!) : s.padStart(width[i]!)).join("  ");
  const out = [fmt(FIGURE_HEADS), ...rows.map(fmt)];
  out.push("");
  out.push(`${c.ops} operations; figures at each policy's peak (most bytes in use):`);
  for (const r of c.runs) {
    const names = r.peakArenas.map((a) => a.name).join(", ") || "none";
    out.push(`  ${r.figures.policy}: peak after operation ${r.peakOp}, arenas measured: ${names}`);
  }
  return out;
}
