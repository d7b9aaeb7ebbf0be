/**
 * Allocation policies a vmem trace can be replayed under: the registry
 * behind `mm/replay.ts vmem --policy NAME` and `--compare P1,P2,...`.
 *
 * A policy is a name, the trace kind whose replayer carries it out (a key
 * of REPLAYERS) and the policy word it writes into every `alloc` and
 * `xalloc` line in place of the line's own. So one trace, recorded with
 * named allocations, replays under each policy of each allocator: another
 * flavor of arena registers its policies here under names of its own (say
 * `freebsd-bestfit`, kind `vmem-freebsd`, word `bestfit`).
 *
 * @module
 */

import { describe, KernelError } from "./errors.ts";
import { type Replayer, REPLAYERS } from "./replayer.ts";

/** One policy a vmem trace can be replayed under. */
export interface ReplayPolicy {
  /** The trace kind (a key of {@link REPLAYERS}) whose replayer carries it out. */
  readonly kind: string;
  /** The policy word that replaces the policy of every allocation line. */
  readonly word: string;
  /**
   * False for an allocator without quantum caches (FreeBSD's vmem here):
   * its `create` lines then carry `no_qcache`, so a trace recorded from
   * illumos arenas with caches replays on it.
   */
  readonly quantumCaches: boolean;
}

/** The policy words of the vmem format; an allocation line holds at most one. */
export const POLICY_WORDS: readonly string[] = ["instantfit", "bestfit", "firstfit", "nextfit"];

/** The policies by name: illumos vmem's four, and FreeBSD vmem's two. */
export const REPLAY_POLICIES: Readonly<Record<string, ReplayPolicy>> = {
  instantfit: { kind: "vmem", word: "instantfit", quantumCaches: true },
  bestfit: { kind: "vmem", word: "bestfit", quantumCaches: true },
  firstfit: { kind: "vmem", word: "firstfit", quantumCaches: true },
  nextfit: { kind: "vmem", word: "nextfit", quantumCaches: true },
  "freebsd-bestfit": { kind: "vmem-freebsd", word: "bestfit", quantumCaches: false },
  "freebsd-firstfit": { kind: "vmem-freebsd", word: "firstfit", quantumCaches: false },
};

/** The registered policy called `name`; EINVAL naming it and the known ones otherwise. */
export function replayPolicy(name: unknown): ReplayPolicy {
  const p = typeof name === "string" && Object.hasOwn(REPLAY_POLICIES, name)
    ? REPLAY_POLICIES[name]
    : undefined;
  if (p === undefined) {
    throw new KernelError(
      "EINVAL",
      `unknown policy ${describe(name)} (one of ${Object.keys(REPLAY_POLICIES).join(", ")})`,
    );
  }
  return p;
}

/**
 * The registered name of `kind`'s policy `name`: the one registered under
 * that name, else the one whose policy word it is; undefined when `kind`
 * has neither.
 */
function ownPolicyName(kind: string, name: unknown): string | undefined {
  const entries = Object.entries(REPLAY_POLICIES);
  return (entries.find(([n, p]) => p.kind === kind && n === name) ??
    entries.find(([, p]) => p.kind === kind && p.word === name))?.[0];
}

/**
 * The policy `name` for traces of `kind`: a registered name of that kind
 * (`freebsd-firstfit` for `vmem-freebsd`), or the policy word of one
 * (`firstfit`). EINVAL when there is none.
 */
export function kindPolicy(kind: string, name: unknown): ReplayPolicy {
  const own = ownPolicyName(kind, name);
  if (own !== undefined) return REPLAY_POLICIES[own]!;
  const mine = Object.entries(REPLAY_POLICIES).filter(([, p]) => p.kind === kind);
  throw new KernelError(
    "EINVAL",
    `${describe(name)} is not a policy of ${kind} traces (one of ${
      mine.map(([n, p]) => n === p.word ? n : `${n} or ${p.word}`).join(", ")
    })`,
  );
}

/**
 * The registered name that `name` stands for among policies compared on a
 * trace of `kind`: the kind's own policy as {@link kindPolicy} reads it
 * (`bestfit` on a `vmem-freebsd` trace is `freebsd-bestfit`), else the
 * registered policy of that name, of any kind (`freebsd-firstfit` beside
 * illumos's policies on a `vmem` trace). EINVAL naming it and the known
 * ones when there is neither.
 */
export function comparedPolicy(kind: string, name: unknown): string {
  const own = ownPolicyName(kind, name);
  if (own !== undefined) return own;
  replayPolicy(name);
  return name as string;
}

/**
 * Replays a vmem trace with every allocation line's policy replaced by one
 * word (and, for an allocator without quantum caches, every arena created
 * without them).
 */
export class PolicyReplayer implements Replayer {
  readonly #inner: Replayer;
  readonly #word: string;
  readonly #quantumCaches: boolean;

  /** Replays through `inner` with `word` as the policy of every allocation. */
  constructor(inner: Replayer, word: string, quantumCaches?: boolean) {
    if (quantumCaches === undefined) quantumCaches = true;
    this.#inner = inner;
    this.#word = word;
    this.#quantumCaches = quantumCaches;
  }

  /** Carries out `op`, an allocation under the policy word. */
  apply(op: Record<string, unknown>): unknown {
    const flags = op.flags;
    if ((op.op === "alloc" || op.op === "xalloc") && Array.isArray(flags)) {
      const rest = flags.filter((w) => !POLICY_WORDS.includes(w));
      rest.push(this.#word);
      return this.#inner.apply({ ...op, flags: rest });
    }
    if (op.op === "create" && !this.#quantumCaches && Array.isArray(flags)) {
      if (!flags.includes("no_qcache")) {
        return this.#inner.apply({ ...op, flags: [...flags, "no_qcache"] });
      }
    }
    return this.#inner.apply(op);
  }
}

/** A fresh replayer of the policy called `name` (EINVAL when there is none). */
export function policyReplayer(name: string): Replayer {
  const p = replayPolicy(name);
  const make = REPLAYERS[p.kind];
  if (make === undefined) {
    throw new KernelError("EINVAL", `policy ${name} replays as ${p.kind}, a kind not registered`);
  }
  return new PolicyReplayer(make(), p.word, p.quantumCaches);
}
