/**
 * The `vmem-freebsd` kind of the replay format (docs/replay-freebsd.md):
 * vmem traces carried out by arenas of FreeBSD's flavor, with the format's
 * additions (`set_import`, `set_limit`, `set_reclaim`, `reclaims`, `size`
 * of `maxfree`). A refused operation throws a KernelError and leaves every
 * arena as it was. Refusals are made in the arena's codes and answered in
 * the format's: BADARG for a bad field or argument (EINVAL), BUSY for an
 * arena in use (EBUSY). The other codes pass as they are: UNSUPPORTED for
 * what FreeBSD's vmem lacks, ENOENT for an unknown arena, EEXIST for a name
 * in use, BADOP for an unknown operation, BADFREE and WOULDBLOCK.
 *
 * Replay stays without quantum caches: a `create` with a non-zero
 * `qcache_max` (and no `no_qcache`) is UNSUPPORTED, after the checks of
 * `VmemFreeBSD.create`.
 *
 * The reclaim callback of `set_reclaim` only counts its calls; a sleeping
 * allocation that would wait leaves the counts as they were, as it leaves
 * the arenas.
 *
 * @module
 */

import { NamedAllocations } from "./replay_named.ts";
import { describe, KernelError } from "./errors.ts";
import {
  field,
  intField as int,
  stringField,
  type TraceOp as Op,
  wordsField as words,
} from "./replay_fields.ts";
import { VMEM_ALLOC, VMEM_FREE, VMEM_SPAN } from "./vmem.ts";
import {
  M_BESTFIT,
  M_FIRSTFIT,
  M_NOWAIT,
  M_WAITOK,
  VMEM_MAXFREE,
  VmemFreeBSD,
} from "./vmem_freebsd.ts";

/** The format's words for the arena's codes. */
function translated(e: unknown): unknown {
  if (!(e instanceof KernelError)) return e;
  if (e.code === "EINVAL") return new KernelError("BADARG", e.message);
  if (e.code === "EBUSY") return new KernelError("BUSY", e.message);
  return e;
}

/**
 * An allocation's flags as M_* flags: exactly one of sleep and nosleep, at
 * most one policy (none: best-fit). Illumos's instantfit, nextfit and
 * endalloc are UNSUPPORTED (after the other checks, as the reference does).
 */
function allocFlags(op: Op): number {
  const v = field(op, "flags");
  if (!Array.isArray(v)) {
    throw new KernelError("EINVAL", `"flags" must be a list of words, got ${describe(v)}`);
  }
  let sleeps = 0, policies = 0, ends = 0, flags = 0;
  let unsupported: string | null = null;
  for (const w of v) {
    switch (w) {
      case "nosleep":
        sleeps++;
        flags |= M_NOWAIT;
        break;
      case "sleep":
        sleeps++;
        flags |= M_WAITOK;
        break;
      case "bestfit":
        policies++;
        flags |= M_BESTFIT;
        break;
      case "firstfit":
        policies++;
        flags |= M_FIRSTFIT;
        break;
      case "instantfit":
      case "nextfit":
        policies++;
        unsupported = w;
        break;
      case "endalloc":
        ends++;
        unsupported = w;
        break;
      default:
        throw new KernelError("EINVAL", `"flags" has an unknown word ${describe(w)}`);
    }
  }
  if (sleeps !== 1) {
    throw new KernelError("EINVAL", `"flags" must hold exactly one of "sleep" and "nosleep"`);
  }
  if (policies > 1 || ends > 1) throw new KernelError("EINVAL", `"flags" conflict`);
  if (unsupported !== null) {
    throw new KernelError(
      "UNSUPPORTED",
      `FreeBSD's vmem has no ${unsupported} (only bestfit and firstfit)`,
    );
  }
  return flags;
}

/** Replays vmem traces against named arenas of FreeBSD's flavor. */
export class VmemFreeBSDReplayer {
  private readonly arenas = new Map<string, VmemFreeBSD>();
  /** Calls of each arena's counting reclaim callback. */
  private readonly reclaimCounts = new Map<VmemFreeBSD, number>();
  /** Allocations named by id, resolved before {@link run} sees a line. */
  private readonly named = new NamedAllocations({ apply: (op) => this.run(op) });

  /** Carries out one operation; returns the output object or throws a KernelError. */
  apply(op: Record<string, unknown>): unknown {
    try {
      return this.named.apply(op);
    } catch (e) {
      throw translated(e);
    }
  }

  /** Carries out one operation in the arena's own codes (apply translates them). */
  private run(op: Op): unknown {
    const kind = op.op;
    switch (kind) {
      case "create":
        return this.create(op);
      case "add": {
        this.arena(op).add(int(op, "base"), int(op, "size"));
        return { ok: true };
      }
      case "alloc":
      case "xalloc":
        return this.alloc(op, kind === "xalloc");
      case "free":
      case "xfree":
        return this.free(op, kind === "xfree");
      case "size":
        return this.size(op);
      case "contains":
        throw new KernelError("UNSUPPORTED", "FreeBSD's vmem has no contains");
      case "walk": {
        const vm = this.arena(op);
        const t = words(op, "types", ["alloc", "free", "span"]);
        const mask = (t.includes("alloc") ? VMEM_ALLOC : 0) |
          (t.includes("free") ? VMEM_FREE : 0) | (t.includes("span") ? VMEM_SPAN : 0);
        const segs: [string, number, number][] = [];
        vm.walk(mask, (start, size, type) => segs.push([type, start, size]));
        return { segs };
      }
      case "destroy": {
        const name = this.name(op);
        const vm = this.arena(op);
        const leaked = vm.destroy();
        this.arenas.delete(name);
        this.reclaimCounts.delete(vm);
        return { ok: true, leaked };
      }
      case "set_import":
        return this.setImport(op);
      case "set_limit": {
        const vm = this.arena(op);
        vm.setLimit(int(op, "limit"));
        return { ok: true };
      }
      case "set_reclaim": {
        const vm = this.arena(op);
        const on = field(op, "reclaim");
        if (typeof on !== "boolean") {
          throw new KernelError("EINVAL", `"reclaim" must be true or false, got ${describe(on)}`);
        }
        vm.setReclaim(on ? this.countReclaim : null);
        return { ok: true };
      }
      case "reclaims": {
        const vm = this.arena(op);
        return { reclaims: this.reclaimCounts.get(vm) ?? 0 };
      }
      default:
        throw new KernelError("BADOP", `unknown vmem-freebsd operation ${describe(kind)}`);
    }
  }

  /** The reclaim callback: counts its calls per arena. */
  private readonly countReclaim = (arena: VmemFreeBSD): void => {
    this.reclaimCounts.set(arena, (this.reclaimCounts.get(arena) ?? 0) + 1);
  };

  /** The arena name an operation gives, checked. */
  private name(op: Op): string {
    return stringField(op, "arena");
  }

  /** The live arena an operation names; ENOENT when there is none. */
  private arena(op: Op): VmemFreeBSD {
    const name = this.name(op);
    const vm = this.arenas.get(name);
    if (vm === undefined) throw new KernelError("ENOENT", `no arena ${describe(name)}`);
    return vm;
  }

  /** An arena named by field `name` (a string) or null. */
  private sourceField(op: Op, name: string): VmemFreeBSD | null {
    const src = field(op, name);
    if (src === null) return null;
    if (typeof src !== "string") {
      throw new KernelError("EINVAL", `"${name}" must be a name or null, got ${describe(src)}`);
    }
    const vm = this.arenas.get(src);
    if (vm === undefined) throw new KernelError("ENOENT", `no source arena ${describe(src)}`);
    return vm;
  }

  /** `create`: the arena, and with a source `vmem_set_import` at the larger quantum. */
  private create(op: Op): unknown {
    const name = this.name(op);
    const base = int(op, "base");
    const size = int(op, "size");
    const quantum = int(op, "quantum");
    let qcacheMax = int(op, "qcache_max");
    const flags = words(op, "flags", ["identifier", "no_qcache"]);
    const source = this.sourceField(op, "source");
    if (this.arenas.has(name)) throw new KernelError("EEXIST", `arena ${describe(name)} exists`);
    // FreeBSD has no VMC_NO_QCACHE: the word drops the quantum caches.
    if (flags.includes("no_qcache")) qcacheMax = 0;
    if (qcacheMax !== 0) {
      // FreeBSD's quantum caches are UMA zones, which the reference does not
      // build: such a line is UNSUPPORTED once it passes the checks an arena
      // of its own (made and dropped here) makes first.
      VmemFreeBSD.create(name, base, size, quantum, { qcacheMax });
      throw new KernelError("UNSUPPORTED", `quantum caches (qcache_max ${qcacheMax})`);
    }
    const vm = VmemFreeBSD.create(name, base, size, quantum, { source: source ?? undefined });
    this.arenas.set(name, vm);
    return { ok: true };
  }

  /** `alloc` and `xalloc`; a sleeping request that is refused leaves the reclaim counts. */
  private alloc(op: Op, x: boolean): unknown {
    const vm = this.arena(op);
    const size = int(op, "size");
    const c = x
      ? [
        int(op, "align"),
        int(op, "phase"),
        int(op, "nocross"),
        int(op, "minaddr"),
        int(op, "maxaddr"),
      ]
      : null;
    const flags = allocFlags(op);
    if (size === 0) throw new KernelError("EINVAL", `"size" must be non-zero`);
    let counts: Map<VmemFreeBSD, number> | null = null;
    if (flags & M_WAITOK) counts = new Map(this.reclaimCounts);
    let addr: number;
    try {
      addr = c === null
        ? vm.alloc(size, flags)
        : vm.xalloc(size, c[0]!, c[1]!, c[2]!, c[3]!, c[4]!, flags);
    } catch (e) {
      if (counts !== null) {
        this.reclaimCounts.clear();
        for (const [k, v] of counts) this.reclaimCounts.set(k, v);
      }
      throw e;
    }
    return { addr: addr < 0 ? null : addr };
  }

  /** `free` and `xfree` (by address: a free by id was resolved before). */
  private free(op: Op, x: boolean): unknown {
    const vm = this.arena(op);
    const addr = int(op, "addr"), size = int(op, "size");
    if (x) vm.xfree(addr, size);
    else vm.free(addr, size);
    return { ok: true };
  }

  /** `size`: alloc and/or free, or maxfree alone. */
  private size(op: Op): unknown {
    const vm = this.arena(op);
    const t = words(op, "types", ["alloc", "free", "maxfree"]);
    if (t.length === 0 || (t.includes("maxfree") && t.length > 1)) {
      throw new KernelError("EINVAL", `"types" must be alloc and/or free, or maxfree alone`);
    }
    const mask = t.includes("maxfree")
      ? VMEM_MAXFREE
      : (t.includes("alloc") ? VMEM_ALLOC : 0) | (t.includes("free") ? VMEM_FREE : 0);
    return { size: vm.size(mask) };
  }

  /** `set_import`: a source by name (null: none) and an import quantum. */
  private setImport(op: Op): unknown {
    const vm = this.arena(op);
    const iq = int(op, "import_quantum");
    const source = this.sourceField(op, "source");
    vm.setImport(source, iq);
    return { ok: true };
  }
}
