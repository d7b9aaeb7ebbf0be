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
}

/** The policy words of the vmem format; an allocation line holds at most one. */
export const POLICY_WORDS: readonly string[] = ["instantfit", "bestfit", "firstfit", "nextfit"];

/** The policies by name: illumos vmem's four. */
export const REPLAY_POLICIES: Readonly<Record<string, ReplayPolicy>> = {
  instantfit: { kind: "vmem", word: "instantfit" },
  bestfit: { kind: "vmem", word: "bestfit" },
  firstfit: { kind: "vmem", word: "firstfit" },
  nextfit: { kind: "vmem", word: "nextfit" },
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

/** Replays a vmem trace with every allocation line's policy replaced by one word. */
export class PolicyReplayer implements Replayer {
  readonly #inner: Replayer;
  readonly #word: string;

  /** Replays through `inner` with `word` as the policy of every allocation. */
  constructor(inner: Replayer, word: string) {
    this.#inner = inner;
    this.#word = word;
  }

  /** Carries out `op`, an allocation under the policy word. */
  apply(op: Record<string, unknown>): unknown {
    const flags = op.flags;
    if ((op.op === "alloc" || op.op === "xalloc") && Array.isArray(flags)) {
      const rest = flags.filter((w) => !POLICY_WORDS.includes(w));
      rest.push(this.#word);
      return this.#inner.apply({ ...op, flags: rest });
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
  return new PolicyReplayer(make(), p.word);
}
