/**
 * The vmem half of the replay format (spec/replay.md): arenas named by
 * strings, one trace operation at a time, each answered with the output
 * object the spec gives. A refused operation throws a KernelError and leaves
 * every arena as it was; the codes are EINVAL for a bad field, ENOENT for an
 * unknown arena, EEXIST for a name in use, BADOP for an unknown operation,
 * and whatever the arena refuses with (BADFREE, EBUSY, WOULDBLOCK, ...).
 * Allocations may be named by id and freed by name (see replay_named.ts).
 *
 * @module
 */

import { describe, KernelError } from "./errors.ts";
import { NamedAllocations } from "./replay_named.ts";
import { field, intField as int, type TraceOp, wordsField } from "./replay_fields.ts";
import {
  VM_BESTFIT,
  VM_ENDALLOC,
  VM_FIRSTFIT,
  VM_INSTANTFIT,
  VM_NEXTFIT,
  VM_NOSLEEP,
  VM_SLEEP,
  VMC_IDENTIFIER,
  VMC_NO_QCACHE,
  Vmem,
  VMEM_ALLOC,
  VMEM_FREE,
  VMEM_SPAN,
  VmemGroup,
} from "./vmem.ts";

type Op = TraceOp;

/** The policy words of allocation lines and the VM_* flag each stands for. */
export const POLICY_FLAGS: Readonly<
  Record<"instantfit" | "bestfit" | "firstfit" | "nextfit", number>
> = {
  instantfit: VM_INSTANTFIT,
  bestfit: VM_BESTFIT,
  firstfit: VM_FIRSTFIT,
  nextfit: VM_NEXTFIT,
};

const POLICY_WORDS = Object.keys(POLICY_FLAGS) as (keyof typeof POLICY_FLAGS)[];
const ALLOC_WORDS = ["nosleep", "sleep", ...POLICY_WORDS, "endalloc"];

/** Field `name` as a set of words of `allowed`, each at most once (as the reference reads them). */
function words(op: Op, name: string, allowed: readonly string[]): Set<string> {
  return new Set(wordsField(op, name, allowed));
}

/** Turns an allocation flag list into VM_* flags: one of sleep/nosleep, at most one policy. */
function allocFlags(op: Op): number {
  const f = words(op, "flags", ALLOC_WORDS);
  if (f.has("sleep") === f.has("nosleep")) {
    throw new KernelError("EINVAL", `"flags" must hold exactly one of "sleep" and "nosleep"`);
  }
  let policies = 0;
  let flags = f.has("nosleep") ? VM_NOSLEEP : VM_SLEEP;
  for (const w of POLICY_WORDS) {
    if (f.has(w)) (policies++, flags |= POLICY_FLAGS[w]);
  }
  if (policies > 1) throw new KernelError("EINVAL", `"flags" may hold at most one policy`);
  if (f.has("endalloc")) flags |= VM_ENDALLOC;
  return flags;
}

/**
 * The flag list of an allocation line for the VM_* flags `vmflag` (what
 * {@link allocFlags} reads back): instant-fit, the default, has no word.
 */
export function allocWords(vmflag: number): string[] {
  const out = [(vmflag & VM_NOSLEEP) !== 0 ? "nosleep" : "sleep"];
  for (const w of POLICY_WORDS) {
    if (POLICY_FLAGS[w] !== 0 && (vmflag & POLICY_FLAGS[w]) !== 0) out.push(w);
  }
  if ((vmflag & VM_ENDALLOC) !== 0) out.push("endalloc");
  return out;
}

function typeMask(op: Op, allowed: readonly string[]): number {
  const t = words(op, "types", allowed);
  return (t.has("alloc") ? VMEM_ALLOC : 0) | (t.has("free") ? VMEM_FREE : 0) |
    (t.has("span") ? VMEM_SPAN : 0);
}

/** Replays vmem trace operations against a set of named arenas. */
export class VmemReplayer {
  private readonly arenas = new Map<string, Vmem>();
  private readonly named = new NamedAllocations({ apply: (op) => this.applyNamed(op) });
  /** The replay's arenas are a group of their own: nothing else reaps them or joins their journal. */
  private readonly group = new VmemGroup();

  /** Carries out one operation; returns the output object or throws a KernelError. */
  apply(op: Record<string, unknown>): unknown {
    return this.named.apply(op);
  }

  /** Checks the invariants of every live arena (see {@link Vmem.check}). */
  check(): void {
    for (const vmp of this.arenas.values()) vmp.check();
  }

  /** Carries out one operation whose ids are resolved. */
  private applyNamed(op: Op): unknown {
    const kind = op.op;
    switch (kind) {
      case "create":
        return this.create(op);
      case "add": {
        this.arena(op).add(int(op, "base"), int(op, "size"));
        return { ok: true };
      }
      case "alloc": {
        const vmp = this.arena(op);
        const addr = vmp.alloc(int(op, "size"), allocFlags(op));
        return { addr: addr === 0 ? null : addr };
      }
      case "xalloc": {
        const vmp = this.arena(op);
        const addr = vmp.xalloc(
          int(op, "size"),
          int(op, "align"),
          int(op, "phase"),
          int(op, "nocross"),
          int(op, "minaddr"),
          int(op, "maxaddr"),
          allocFlags(op),
        );
        return { addr: addr === 0 ? null : addr };
      }
      case "free": {
        this.arena(op).free(int(op, "addr"), int(op, "size"));
        return { ok: true };
      }
      case "xfree": {
        this.arena(op).xfree(int(op, "addr"), int(op, "size"));
        return { ok: true };
      }
      case "size": {
        const vmp = this.arena(op);
        return { size: vmp.size(typeMask(op, ["alloc", "free"])) };
      }
      case "contains": {
        const vmp = this.arena(op);
        return { contains: vmp.contains(int(op, "addr"), int(op, "size")) };
      }
      case "walk": {
        const vmp = this.arena(op);
        const mask = typeMask(op, ["alloc", "free", "span"]);
        const segs: [string, number, number][] = [];
        if (mask !== 0) vmp.walk(mask, (start, size, type) => segs.push([type, start, size]));
        return { segs };
      }
      case "destroy": {
        const name = this.name(op);
        const vmp = this.arena(op);
        const leaked = vmp.destroy();
        this.arenas.delete(name);
        return { ok: true, leaked };
      }
      default:
        throw new KernelError("BADOP", `unknown vmem operation ${describe(kind)}`);
    }
  }

  /** The arena name an operation gives, checked. */
  private name(op: Op): string {
    const name = field(op, "arena");
    if (typeof name !== "string") {
      throw new KernelError("EINVAL", `"arena" must be a string, got ${describe(name)}`);
    }
    return name;
  }

  /** The live arena an operation names; ENOENT when there is none. */
  private arena(op: Op): Vmem {
    const name = this.name(op);
    const vmp = this.arenas.get(name);
    if (vmp === undefined) throw new KernelError("ENOENT", `no arena ${describe(name)}`);
    return vmp;
  }

  /** Carries out `create`. */
  private create(op: Op): unknown {
    const name = this.name(op);
    if (this.arenas.has(name)) throw new KernelError("EEXIST", `arena ${describe(name)} exists`);
    const base = int(op, "base");
    const size = int(op, "size");
    const quantum = int(op, "quantum");
    const qcacheMax = int(op, "qcache_max");
    const src = field(op, "source");
    let source: Vmem | undefined;
    if (src !== null) {
      if (typeof src !== "string") {
        throw new KernelError("EINVAL", `"source" must be a name or null, got ${describe(src)}`);
      }
      source = this.arenas.get(src);
      if (source === undefined) throw new KernelError("ENOENT", `no source arena ${describe(src)}`);
    }
    const f = words(op, "flags", ["identifier", "no_qcache"]);
    const flags = (f.has("identifier") ? VMC_IDENTIFIER : 0) |
      (f.has("no_qcache") ? VMC_NO_QCACHE : 0);
    const vmp = Vmem.create(name, base, size, quantum, {
      source,
      qcacheMax,
      flags,
      group: this.group,
    });
    this.arenas.set(name, vmp);
    return { ok: true };
  }
}
