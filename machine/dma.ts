/**
 * DMA ports: a device's only window into RAM.
 *
 * Theory. A port carries what the device's address engine can do, the same
 * facts a kernel's bus_dma tag describes: the highest byte address it can
 * drive (`maxAddress`: 2^24-1 for ISA, 2^32-1 for 32-bit PCI, 2^53-1 for
 * "64-bit"), the alignment of every segment start, a boundary no segment
 * may cross, the most segments one transfer may have and the longest
 * segment. Every transfer is checked in full before a byte moves:
 *
 * - an `access` fault when a segment breaks a constraint (the device could
 *   not have issued it: on real hardware the address would wrap or the
 *   engine would stop; here nothing moves), or when the device's own
 *   protocol refuses what the driver programmed ({@link DmaPort.fault});
 * - a `decode` fault when a segment reaches an address that is not RAM (as
 *   QEMU tells MEMTX_DECODE_ERROR from other transaction errors).
 *
 * A fault is counted, kept as {@link DmaPort.lastFault} and in a short log,
 * and reported to the device by the return value (`false`, or `-1` for the
 * scatter-gather calls); the device turns it into a status bit. Nothing is
 * read or written by a faulting transfer, not even its valid segments.
 *
 * Segment lists are flat `(address, length)` pairs in any array of numbers;
 * a `Float64Array` holds any address exactly. A list costs a few
 * comparisons per segment against the constraints, then RAM's own
 * scatter-gather call, which checks that every segment is RAM before it
 * copies the segments; checking and moving a list allocates nothing on
 * success. Invariants (see {@link DmaPort.check}):
 * counters are non-negative integers, faults = decode + access.
 *
 * @module
 */

import { checkInt, checkPow2, hex, MachineError, MachineFault } from "./errors.ts";
import type { Ram } from "./ram.ts";

/** Highest address of a 24-bit (ISA) DMA engine: 16 MiB - 1. */
export const DMA_24BIT: number = 2 ** 24 - 1;
/** Highest address of a 30-bit DMA engine: 1 GiB - 1. */
export const DMA_30BIT: number = 2 ** 30 - 1;
/** Highest address of a 32-bit DMA engine: 4 GiB - 1. */
export const DMA_32BIT: number = 2 ** 32 - 1;
/** Highest address of a "64-bit" DMA engine, as far as plain numbers go: 2^53 - 1. */
export const DMA_64BIT: number = Number.MAX_SAFE_INTEGER;

/** What a device's DMA engine can address. */
export interface DmaConstraints {
  /** Highest byte address the device can drive. */
  maxAddress: number;
  /** Every segment starts at a multiple of this power of two (default 1). */
  alignment?: number;
  /** 0 (default) or a power of two that no segment may cross. */
  boundary?: number;
  /** Most segments in one transfer (default unlimited). */
  maxSegments?: number;
  /** Longest segment in bytes (default unlimited). */
  maxSegmentSize?: number;
}

/** The constraints with every default filled in. */
export type DmaLimits = Readonly<Required<DmaConstraints>>;

/** A refused DMA transfer. */
export interface DmaFault {
  /** `decode`: the address is not RAM; `access`: a constraint or the device protocol forbids it. */
  readonly kind: "decode" | "access";
  /** `read`: RAM to device; `write`: device to RAM. */
  readonly op: "read" | "write";
  /** First byte of the offending segment. */
  readonly addr: number;
  /** Length of the offending segment. */
  readonly len: number;
  /** What was wrong, in words. */
  readonly reason: string;
}

const LOG = 16;

/**
 * Validates `c` and returns it with defaults filled in; throws `EINVAL`
 * naming the field that is wrong.
 */
export function dmaLimits(c: DmaConstraints): DmaLimits {
  if (c === null || typeof c !== "object") {
    throw new MachineError("EINVAL", `DMA constraints must be an object, got ${hex(c)}`);
  }
  const maxAddress = checkInt("maxAddress", c.maxAddress, 0);
  const alignment = checkPow2("alignment", c.alignment ?? 1);
  const boundary = c.boundary ?? 0;
  if (boundary !== 0) checkPow2("boundary", boundary);
  const maxSegments = checkInt("maxSegments", c.maxSegments ?? Number.MAX_SAFE_INTEGER, 1);
  const maxSegmentSize = checkInt(
    "maxSegmentSize",
    c.maxSegmentSize ?? Number.MAX_SAFE_INTEGER,
    1,
  );
  if (boundary !== 0 && boundary < alignment) {
    throw new MachineError(
      "EINVAL",
      `boundary ${hex(boundary)} is smaller than alignment ${hex(alignment)}`,
    );
  }
  return Object.freeze({ maxAddress, alignment, boundary, maxSegments, maxSegmentSize });
}

/** A device's checked window into RAM. */
export class DmaPort {
  /** Name of the device (for fault messages). */
  readonly name: string;
  /** The constraints every transfer is checked against. */
  readonly limits: DmaLimits;
  /** Transfers completed (one per call that moved data). */
  transfers = 0;
  /** Segments moved by completed transfers. */
  segments = 0;
  /** Bytes moved by completed transfers. */
  bytes = 0;
  /** Refused transfers, of both kinds. */
  faults = 0;
  /** Refused transfers that reached an address outside RAM. */
  decodeFaults = 0;
  /** Refused transfers that broke a constraint or the device protocol. */
  accessFaults = 0;
  /** The most recent fault, or `null`. */
  lastFault: DmaFault | null = null;

  readonly #ram: Ram;
  readonly #log: DmaFault[] = [];
  // The limits as plain fields, read on every segment.
  readonly #maxAddress: number;
  readonly #alignment: number;
  readonly #boundary: number;
  readonly #maxSegmentSize: number;
  // Exact reciprocals of the alignment and boundary (powers of two), so
  // that a multiplication stands for a division, which costs several times more.
  readonly #perAlignment: number;
  readonly #perBoundary: number;

  /** Creates a port into `ram` for device `name` with constraints `c` (validated). */
  constructor(ram: Ram, name: string, c: DmaConstraints) {
    this.#ram = ram;
    this.name = name;
    this.limits = dmaLimits(c);
    this.#maxAddress = this.limits.maxAddress;
    this.#alignment = this.limits.alignment;
    this.#boundary = this.limits.boundary;
    this.#maxSegmentSize = this.limits.maxSegmentSize;
    this.#perAlignment = 1 / this.#alignment;
    this.#perBoundary = this.#boundary === 0 ? 0 : 1 / this.#boundary;
  }

  /** The last few faults, oldest first. */
  faultLog(): readonly DmaFault[] {
    return this.#log.slice();
  }

  /**
   * Reads `length` bytes of RAM at `pa` into `dst[offset ..]` as one
   * segment. Returns false, moving nothing, on a fault.
   */
  read(pa: number, dst: Uint8Array, offset = 0, length: number = dst.length - offset): boolean {
    if (!this.#segment(pa, length, "read") || !this.#decode(pa, length, "read")) return false;
    this.#ram.read(pa, dst, offset, length);
    this.#count(1, length);
    return true;
  }

  /**
   * Writes `src[offset .. offset + length)` to RAM at `pa` as one segment.
   * Returns false, writing nothing, on a fault.
   */
  write(pa: number, src: Uint8Array, offset = 0, length: number = src.length - offset): boolean {
    if (!this.#segment(pa, length, "write") || !this.#decode(pa, length, "write")) return false;
    this.#ram.write(pa, src, offset, length);
    this.#count(1, length);
    return true;
  }

  /** Sets `len` bytes at `pa` to `byte` as one segment. Returns false, writing nothing, on a fault. */
  fill(pa: number, len: number, byte: number): boolean {
    if (!this.#segment(pa, len, "write") || !this.#decode(pa, len, "write")) return false;
    this.#ram.fill(pa, len, byte);
    this.#count(1, len);
    return true;
  }

  /**
   * Gathers the `nsegs` segments of `segs` (pairs: address, length) into
   * `dst` from `offset` on. Returns the bytes moved, or -1, moving nothing,
   * on a fault (including a list longer than the room left in `dst`).
   */
  readSg(segs: ArrayLike<number>, nsegs: number, dst: Uint8Array, offset = 0): number {
    const total = this.#list(segs, nsegs, dst.length - offset, "read");
    if (total < 0) return -1;
    try {
      this.#ram.readSg(segs, nsegs, dst, offset);
    } catch (e) {
      if (e instanceof MachineFault) return this.#decodeFault(e, "read");
      throw e;
    }
    this.#count(nsegs, total);
    return total;
  }

  /**
   * Scatters `src` from `offset` on over the `nsegs` segments of `segs`.
   * Returns the bytes moved, or -1, writing nothing, on a fault.
   */
  writeSg(segs: ArrayLike<number>, nsegs: number, src: Uint8Array, offset = 0): number {
    const total = this.#list(segs, nsegs, src.length - offset, "write");
    if (total < 0) return -1;
    try {
      this.#ram.writeSg(segs, nsegs, src, offset);
    } catch (e) {
      if (e instanceof MachineFault) return this.#decodeFault(e, "write");
      throw e;
    }
    this.#count(nsegs, total);
    return total;
  }

  /**
   * Whether the device may move `len` bytes at `pa` as one segment (both
   * checks, constraint then decode). On refusal the fault is recorded, as
   * for a transfer.
   */
  validate(pa: number, len: number, op: "read" | "write"): boolean {
    return this.#segment(pa, len, op) && this.#decode(pa, len, op);
  }

  /**
   * Records a fault the device's protocol found (a misaligned ring, a bad
   * descriptor) as an `access` fault (or `decode`), exactly as a refused
   * transfer is recorded. Returns false, for `return port.fault(...)`.
   */
  fault(
    kind: "decode" | "access",
    op: "read" | "write",
    addr: number,
    len: number,
    reason: string,
  ): false {
    const f: DmaFault = Object.freeze({ kind, op, addr, len, reason });
    this.lastFault = f;
    this.faults++;
    if (kind === "decode") this.decodeFaults++;
    else this.accessFaults++;
    if (this.#log.length === LOG) this.#log.shift();
    this.#log.push(f);
    return false;
  }

  /** Verifies the counters. */
  check(): void {
    for (const [k, v] of Object.entries(this.counters())) {
      if (!Number.isInteger(v) || v < 0) {
        throw new MachineError("CORRUPT", `DmaPort.check: ${k} is ${v}`);
      }
    }
    if (this.faults !== this.decodeFaults + this.accessFaults) {
      throw new MachineError("CORRUPT", "DmaPort.check: faults differ from decode + access");
    }
    if (this.#log.length > LOG || (this.faults > 0) !== (this.lastFault !== null)) {
      throw new MachineError("CORRUPT", "DmaPort.check: fault log");
    }
  }

  /** The counters as a plain object (for logs and tests). */
  counters(): {
    transfers: number;
    segments: number;
    bytes: number;
    faults: number;
    decodeFaults: number;
    accessFaults: number;
  } {
    return {
      transfers: this.transfers,
      segments: this.segments,
      bytes: this.bytes,
      faults: this.faults,
      decodeFaults: this.decodeFaults,
      accessFaults: this.accessFaults,
    };
  }

  #count(segments: number, bytes: number): void {
    this.transfers++;
    this.segments += segments;
    this.bytes += bytes;
  }

  /** Checks one segment against the constraints; records an access fault on refusal. */
  #segment(pa: number, len: number, op: "read" | "write"): boolean {
    const L = this.limits;
    if (typeof pa !== "number" || !Number.isInteger(pa) || pa < 0) {
      return this.fault("access", op, pa, len, `address ${hex(pa)} is not a non-negative integer`);
    }
    if (typeof len !== "number" || !Number.isInteger(len) || len < 1) {
      return this.fault("access", op, pa, len, `segment length ${hex(len)} is not positive`);
    }
    // Remainders by powers of two go through floor: on addresses past 2^31
    // `%` is a floating-point remainder, a slow call on this hot path.
    if (L.alignment !== 1 && Math.floor(pa / L.alignment) * L.alignment !== pa) {
      return this.fault("access", op, pa, len, `${hex(pa)} is not ${L.alignment}-byte aligned`);
    }
    if (len > L.maxSegmentSize) {
      return this.fault(
        "access",
        op,
        pa,
        len,
        `segment of ${len} bytes exceeds the maximum of ${L.maxSegmentSize}`,
      );
    }
    if (pa > L.maxAddress - (len - 1)) {
      return this.fault(
        "access",
        op,
        pa,
        len,
        `segment ${hex(pa)}+${hex(len)} reaches past the device's last address ${
          hex(L.maxAddress)
        }`,
      );
    }
    const b = L.boundary;
    if (b !== 0 && Math.floor(pa / b) !== Math.floor((pa + len - 1) / b)) {
      return this.fault(
        "access",
        op,
        pa,
        len,
        `segment ${hex(pa)}+${hex(len)} crosses a ${hex(b)} boundary`,
      );
    }
    return true;
  }

  #decode(pa: number, len: number, op: "read" | "write"): boolean {
    const why = this.#ram.rangeProblem(pa, len);
    return why === null ? true : this.fault("decode", op, pa, len, why);
  }

  /** Records RAM's refusal of a list (a segment that is not all RAM) as a decode fault. */
  #decodeFault(f: MachineFault, op: "read" | "write"): -1 {
    this.fault("decode", op, f.addr, f.size, f.reason);
    return -1;
  }

  /**
   * Checks a list against the constraints; returns its total length, or -1
   * after recording the fault. Whether the segments are RAM is left to
   * {@link Ram.readSg} and {@link Ram.writeSg}, which check it before moving
   * a byte. A segment that passes the few comparisons here is legal; any
   * other goes through the full segment check, which words the fault.
   */
  #list(segs: ArrayLike<number>, nsegs: number, room: number, op: "read" | "write"): number {
    if (!Number.isInteger(nsegs) || nsegs < 1 || 2 * nsegs > segs.length) {
      this.fault("access", op, 0, 0, `segment count ${hex(nsegs)} is not in [1, list length]`);
      return -1;
    }
    if (nsegs > this.limits.maxSegments) {
      this.fault(
        "access",
        op,
        segs[0]!,
        0,
        `${nsegs} segments exceed the maximum of ${this.limits.maxSegments}`,
      );
      return -1;
    }
    const maxAddress = this.#maxAddress, boundary = this.#boundary;
    const perAlign = this.#perAlignment, perBoundary = this.#perBoundary;
    const maxLen = this.#maxSegmentSize;
    let total = 0;
    for (let i = 0; i < nsegs; i++) {
      const pa = segs[2 * i]!, len = segs[2 * i + 1]!;
      // `pa * (1 / alignment)` is exact (a power of two), so it is an
      // integer exactly when `pa` is an aligned integer; NaN fails every
      // comparison. The boundary test is the offset in the boundary window
      // plus the length.
      const q = pa * perAlign;
      if (
        !(typeof pa === "number" && typeof len === "number" && Math.floor(q) === q && pa >= 0 &&
          Math.floor(len) === len && len >= 1 && len <= maxLen && pa <= maxAddress - (len - 1) &&
          (boundary === 0 || pa - Math.floor(pa * perBoundary) * boundary + len <= boundary)) &&
        !this.#segment(pa, len, op)
      ) {
        return -1;
      }
      total += len;
    }
    if (total > room) {
      this.fault(
        "access",
        op,
        segs[0]!,
        total,
        `list of ${total} bytes exceeds the ${room}-byte buffer`,
      );
      return -1;
    }
    return total;
  }
}
