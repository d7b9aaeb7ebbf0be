/**
 * DMA ports: a device's only window into RAM, and the one vocabulary in
 * which a device's DMA limits are written.
 *
 * Theory. {@link DmaConstraints} says what a device's address engine can
 * do, in the words the kernel's bus_dma tags use too: the lowest and highest
 * byte address it can drive (`maxAddress`: 2^24-1 for ISA, 2^32-1 for
 * 32-bit PCI, 2^53-1 for "64-bit"), the alignment of every segment start, a
 * boundary no segment may cross, the most segments one transfer may have,
 * the longest segment and the longest transfer. A port carries its device's
 * constraints and checks every transfer in full before a byte moves:
 *
 * - an `access` fault when a segment breaks a constraint (the device could
 *   not have issued it: on real hardware the address would wrap or the
 *   engine would stop; here nothing moves), or when the device's own
 *   protocol refuses what the driver programmed ({@link DmaPort.fault});
 * - a `decode` fault when a segment reaches an address that is not RAM (as
 *   QEMU tells MEMTX_DECODE_ERROR from other transaction errors);
 * - a `translation` fault when the device sits behind an IOMMU whose tables
 *   do not let it make the access (an unmapped page, a write to a read-only
 *   one; see `iommu.ts`).
 *
 * A fault is counted, kept as {@link DmaPort.lastFault} and in a short log,
 * and reported to the device by the return value (`false`, or `-1` for the
 * scatter-gather calls); the device turns it into a status bit. Nothing is
 * read or written by a faulting transfer, not even its valid segments. A
 * call from a device never throws for what it was given (any value at all
 * as an address or a length is a fault), so a model always ends a bad
 * transfer with a fault record.
 *
 * The address a segment names is a bus address: the address the device
 * drives. A port's device may be placed behind a {@link DmaTranslator} (an
 * IOMMU): its constraints still apply to the addresses it drives, and once
 * they pass, the translator turns the list's runs into runs of RAM (or
 * faults it, moving nothing). A port not placed behind one sends its list to
 * RAM as it is; that path pays one test per transfer for the seam.
 *
 * Segment lists are flat `(address, length)` pairs in any array of numbers;
 * a `Float64Array` holds any address exactly. A list costs a few
 * comparisons per segment against the constraints; segments that follow one
 * another in RAM are then copied as one run, so a transfer of a contiguous
 * buffer costs one copy whatever its segment count, and RAM checks each run
 * is RAM before it copies anything. Checking and moving a list allocates
 * nothing on success.
 *
 * A {@link DmaMonitor} (the kernel's DMA debugging, a bus analyser) may
 * watch a port: it is told of every transfer that moved data. Work a device
 * has queued but not run is counted in {@link DmaPort.inFlight}.
 *
 * Invariants (see {@link DmaPort.check}): counters are non-negative
 * integers, faults = decode + access + translation.
 *
 * @module
 */

import { checkInt, checkPow2, hex, MachineError, MachineFault } from "./errors.ts";
import type { Ram } from "./ram.ts";

/** Highest address of a 24-bit (ISA) DMA engine: 16 MiB - 1. */
export const DMA_24BIT: number = 2 ** 24 - 1;
/** Highest address of a 28-bit DMA engine: 256 MiB - 1. */
export const DMA_28BIT: number = 2 ** 28 - 1;
/** Highest address of a 30-bit DMA engine: 1 GiB - 1. */
export const DMA_30BIT: number = 2 ** 30 - 1;
/** Highest address of a 32-bit DMA engine: 4 GiB - 1. */
export const DMA_32BIT: number = 2 ** 32 - 1;
/** Highest address of a "64-bit" DMA engine, as far as plain numbers go: 2^53 - 1. */
export const DMA_64BIT: number = Number.MAX_SAFE_INTEGER;

/**
 * What a device's DMA engine can address; the same words describe a
 * kernel bus_dma tag. Every field may be left out (no limit).
 */
export interface DmaConstraints {
  /** Lowest byte address the device can drive (default 0). */
  minAddress?: number;
  /** Highest byte address the device can drive (default 2^53 - 1). */
  maxAddress?: number;
  /** Every segment starts at a multiple of this power of two (default 1). */
  alignment?: number;
  /** 0 (default) or a power of two that no segment may cross. */
  boundary?: number;
  /** Most segments in one transfer (default unlimited). */
  maxSegments?: number;
  /** Longest segment in bytes, a multiple of the alignment (default unlimited). */
  maxSegmentSize?: number;
  /** Longest transfer in bytes, all segments together (default unlimited). */
  maxTransfer?: number;
}

/** The constraints with every default filled in. */
export type DmaLimits = Readonly<Required<DmaConstraints>>;

/** The fields of {@link DmaConstraints}, in the order they are checked and described. */
export const DMA_CONSTRAINT_FIELDS: readonly (keyof DmaConstraints)[] = Object.freeze([
  "minAddress",
  "maxAddress",
  "alignment",
  "boundary",
  "maxSegments",
  "maxSegmentSize",
  "maxTransfer",
]);

/** "No limit" for the counts and sizes of {@link DmaLimits}. */
export const DMA_NO_LIMIT: number = Number.MAX_SAFE_INTEGER;

/**
 * Why a transfer was refused: `decode` (the address is not RAM), `access`
 * (a constraint or the device protocol forbids it), `translation` (the
 * IOMMU the device sits behind does not map it for the access).
 */
export type DmaFaultKind = "decode" | "access" | "translation";

/** A refused DMA transfer. */
export interface DmaFault {
  /** What refused it. */
  readonly kind: DmaFaultKind;
  /** `read`: RAM to device; `write`: device to RAM. */
  readonly op: "read" | "write";
  /**
   * First byte of the offending segment (as the device gave it: any value);
   * for a decode fault behind an IOMMU, the RAM address its tables gave.
   */
  readonly addr: number;
  /** Length of the offending segment (as the device gave it). */
  readonly len: number;
  /** What was wrong, in words. */
  readonly reason: string;
}

/** What watches a port's transfers (the kernel's DMA debugging). */
export interface DmaMonitor {
  /**
   * Called after a transfer moved data: `op` as the port sees it, and the
   * `nsegs` segments (address, length pairs) of `segs` it touched.
   */
  transferred(port: DmaPort, op: "read" | "write", segs: ArrayLike<number>, nsegs: number): void;
}

/**
 * What stands between a port and RAM when its device sits behind an IOMMU:
 * it turns the addresses the device drives into RAM addresses.
 */
export interface DmaTranslator {
  /**
   * Translates the `n` runs of `runs` (address, length pairs the device of
   * `port` drives, already checked against its constraints) for source
   * `source`, as a `write` (device to RAM) or a read. Writes the RAM runs
   * into {@link DmaTranslator.out} and returns how many there are, or -1
   * after recording a `translation` fault on `port` (nothing may move then).
   */
  translate(source: number, port: DmaPort, write: boolean, runs: Float64Array, n: number): number;
  /** The RAM runs of the last translation (address, length pairs). */
  readonly out: Float64Array;
}

const LOG = 16;

/**
 * Validates `c` and returns it with defaults filled in; throws `EINVAL`
 * naming the field that is wrong and its value.
 */
export function dmaLimits(c: DmaConstraints): DmaLimits {
  if (c === null || typeof c !== "object") {
    throw new MachineError("EINVAL", `DMA constraints must be an object, got ${hex(c)}`);
  }
  const minAddress = checkInt("minAddress", c.minAddress ?? 0, 0);
  const maxAddress = checkInt("maxAddress", c.maxAddress ?? DMA_64BIT, 0);
  if (maxAddress < minAddress) {
    throw new MachineError(
      "EINVAL",
      `maxAddress ${hex(maxAddress)} is below minAddress ${hex(minAddress)}`,
    );
  }
  const alignment = checkPow2("alignment", c.alignment ?? 1);
  const boundary = c.boundary ?? 0;
  if (boundary !== 0) checkPow2("boundary", boundary);
  const maxSegments = checkInt("maxSegments", c.maxSegments ?? DMA_NO_LIMIT, 1);
  const maxSegmentSize = checkInt("maxSegmentSize", c.maxSegmentSize ?? DMA_NO_LIMIT, 1);
  const maxTransfer = checkInt("maxTransfer", c.maxTransfer ?? DMA_NO_LIMIT, 1);
  if (boundary !== 0 && boundary < alignment) {
    throw new MachineError(
      "EINVAL",
      `boundary ${hex(boundary)} is smaller than alignment ${hex(alignment)}`,
    );
  }
  // A segment cut at the longest segment size must start aligned again.
  if (maxSegmentSize !== DMA_NO_LIMIT && maxSegmentSize % alignment !== 0) {
    throw new MachineError(
      "EINVAL",
      `maxSegmentSize ${maxSegmentSize} is not a multiple of alignment ${alignment}`,
    );
  }
  return Object.freeze({
    minAddress,
    maxAddress,
    alignment,
    boundary,
    maxSegments,
    maxSegmentSize,
    maxTransfer,
  });
}

/**
 * Why the device of `limits` could not issue the segment `[pa, pa + len)`,
 * in words, or null when it could. Any value is accepted (a BigInt, a
 * string, NaN): it is named, never thrown on.
 */
export function segmentProblem(limits: DmaLimits, pa: unknown, len: unknown): string | null {
  if (typeof pa !== "number" || !Number.isInteger(pa) || pa < 0) {
    return `address ${hex(pa)} is not a non-negative integer`;
  }
  if (typeof len !== "number" || !Number.isInteger(len) || len < 1) {
    return `segment length ${hex(len)} is not positive`;
  }
  const L = limits;
  // Remainders by powers of two go through floor: on addresses past 2^31
  // `%` is a floating-point remainder, a slow call.
  if (L.alignment !== 1 && Math.floor(pa / L.alignment) * L.alignment !== pa) {
    return `${hex(pa)} is not ${L.alignment}-byte aligned`;
  }
  if (len > L.maxSegmentSize) {
    return `segment of ${len} bytes exceeds the maximum of ${L.maxSegmentSize}`;
  }
  if (pa < L.minAddress) {
    return `segment ${hex(pa)}+${hex(len)} starts below the device's first address ${
      hex(L.minAddress)
    }`;
  }
  if (pa > L.maxAddress - (len - 1)) {
    return `segment ${hex(pa)}+${hex(len)} reaches past the device's last address ${
      hex(L.maxAddress)
    }`;
  }
  const b = L.boundary;
  if (b !== 0 && Math.floor(pa / b) !== Math.floor((pa + len - 1) / b)) {
    return `segment ${hex(pa)}+${hex(len)} crosses a ${hex(b)} boundary`;
  }
  return null;
}

/**
 * Why the device of `limits` could not issue the `nsegs` segments of `segs`
 * as one transfer (segment count, each segment, the total), or null.
 */
export function listProblem(
  limits: DmaLimits,
  segs: ArrayLike<unknown>,
  nsegs: number,
): string | null {
  if (!Number.isInteger(nsegs) || nsegs < 1 || 2 * nsegs > segs.length) {
    return `segment count ${hex(nsegs)} is not in [1, list length]`;
  }
  if (nsegs > limits.maxSegments) {
    return `${nsegs} segments exceed the maximum of ${limits.maxSegments}`;
  }
  let total = 0;
  for (let i = 0; i < nsegs; i++) {
    const why = segmentProblem(limits, segs[2 * i], segs[2 * i + 1]);
    if (why !== null) return why;
    total += segs[2 * i + 1] as number;
  }
  if (total > limits.maxTransfer) {
    return `transfer of ${total} bytes exceeds the device's largest of ${limits.maxTransfer}`;
  }
  return null;
}

/**
 * A device's checked window into RAM.
 *
 * @example Transfers checked against the device's constraints
 * ```ts
 * import { createMachine, DmaPort } from "./mod.ts";
 *
 * const m = createMachine({ preset: "isa" });
 * // An ISA device: 24-bit addresses, no transfer across a 64 KiB line.
 * const port = new DmaPort(m.ram, "isa0", { maxAddress: 2 ** 24 - 1, boundary: 65536 });
 * console.log(port.write(0x20000, new Uint8Array([1, 2, 3]))); // true: the bytes are in RAM
 * console.log(port.write(0x2fffe, new Uint8Array(4))); // false: crosses 0x30000
 * console.log(port.lastFault?.kind, port.faults); // why, and how many so far
 * ```
 */
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
  /** Refused transfers the IOMMU in front of the device would not translate. */
  translationFaults = 0;
  /** The most recent fault, or `null`. */
  lastFault: DmaFault | null = null;
  /**
   * Work the device has queued and not yet run (a command it will carry out
   * later): while it is non-zero the device may still read or write memory.
   */
  inFlight = 0;
  /** Told of every transfer that moved data, or null. */
  monitor: DmaMonitor | null = null;

  readonly #ram: Ram;
  readonly #log: DmaFault[] = [];
  // The IOMMU in front of the device and the device's source number there.
  #translator: DmaTranslator | null = null;
  #source = -1;
  // The limits as plain fields, read on every segment.
  readonly #minAddress: number;
  readonly #maxAddress: number;
  readonly #alignment: number;
  readonly #boundary: number;
  readonly #maxSegmentSize: number;
  // Exact reciprocals of the alignment and boundary (powers of two), so
  // that a multiplication stands for a division, which costs several times more.
  readonly #perAlignment: number;
  readonly #perBoundary: number;
  // Runs of contiguous segments of the list being moved, and one segment.
  #runs = new Float64Array(32);
  readonly #one = new Float64Array(2);

  /** Creates a port into `ram` for device `name` with constraints `c` (validated). */
  constructor(ram: Ram, name: string, c: DmaConstraints) {
    this.#ram = ram;
    this.name = name;
    this.limits = dmaLimits(c);
    this.#minAddress = this.limits.minAddress;
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
  read(pa: number, dst: Uint8Array, offset?: number, length?: number): boolean {
    if (offset === undefined) offset = 0;
    if (length === undefined) length = dst.length - offset;
    if (this.#translator !== null) return this.#translated("read", pa, length, dst, offset, 0);
    if (!this.#segment(pa, length, "read") || !this.#decode(pa, length, "read")) return false;
    this.#ram.read(pa, dst, offset, length);
    this.#count(1, length);
    this.#watch("read", pa, length);
    return true;
  }

  /**
   * Writes `src[offset .. offset + length)` to RAM at `pa` as one segment.
   * Returns false, writing nothing, on a fault.
   */
  write(pa: number, src: Uint8Array, offset?: number, length?: number): boolean {
    if (offset === undefined) offset = 0;
    if (length === undefined) length = src.length - offset;
    if (this.#translator !== null) return this.#translated("write", pa, length, src, offset, 0);
    if (!this.#segment(pa, length, "write") || !this.#decode(pa, length, "write")) return false;
    this.#ram.write(pa, src, offset, length);
    this.#count(1, length);
    this.#watch("write", pa, length);
    return true;
  }

  /** Sets `len` bytes at `pa` to `byte` as one segment. Returns false, writing nothing, on a fault. */
  fill(pa: number, len: number, byte: number): boolean {
    if (this.#translator !== null) return this.#translated("fill", pa, len, null, 0, byte);
    if (!this.#segment(pa, len, "write") || !this.#decode(pa, len, "write")) return false;
    this.#ram.fill(pa, len, byte);
    this.#count(1, len);
    this.#watch("write", pa, len);
    return true;
  }

  /**
   * Gathers the `nsegs` segments of `segs` (pairs: address, length) into
   * `dst` from `offset` on. Returns the bytes moved, or -1, moving nothing,
   * on a fault (including a list longer than the room left in `dst`).
   */
  readSg(segs: ArrayLike<number>, nsegs: number, dst: Uint8Array, offset?: number): number {
    if (offset === undefined) offset = 0;
    return this.#sg("read", segs, nsegs, dst, offset);
  }

  /**
   * Scatters `src` from `offset` on over the `nsegs` segments of `segs`.
   * Returns the bytes moved, or -1, writing nothing, on a fault.
   */
  writeSg(segs: ArrayLike<number>, nsegs: number, src: Uint8Array, offset?: number): number {
    if (offset === undefined) offset = 0;
    return this.#sg("write", segs, nsegs, src, offset);
  }

  /**
   * Whether the device may move `len` bytes at `pa` as one segment (both
   * checks, constraint then decode). On refusal the fault is recorded, as
   * for a transfer.
   */
  validate(pa: number, len: number, op: "read" | "write"): boolean {
    if (!this.#segment(pa, len, op)) return false;
    if (this.#translator === null) return this.#decode(pa, len, op);
    return this.#translateOne(pa, len, op) >= 0;
  }

  /**
   * Places the device behind `translator` (an IOMMU), as its source number
   * `source`: from now on every transfer is translated. A port is placed
   * once (`EBUSY` after that).
   */
  placeBehind(translator: DmaTranslator, source: number): void {
    if (translator === null || typeof translator !== "object") {
      throw new MachineError("EINVAL", `translator must be an object, got ${hex(translator)}`);
    }
    checkInt("source", source, 0, 0xffff);
    if (this.#translator !== null) {
      throw new MachineError("EBUSY", `${this.name} is already behind an IOMMU`);
    }
    this.#translator = translator;
    this.#source = source;
  }

  /** The device's source number at the IOMMU it sits behind, or -1. */
  get source(): number {
    return this.#source;
  }

  /**
   * Records a fault the device's protocol found (a misaligned ring, a bad
   * descriptor) as an `access` fault (or `decode`), exactly as a refused
   * transfer is recorded. Returns false, for `return port.fault(...)`.
   */
  fault(
    kind: DmaFaultKind,
    op: "read" | "write",
    addr: number,
    len: number,
    reason: string,
  ): false {
    const f: DmaFault = Object.freeze({ kind, op, addr, len, reason });
    this.lastFault = f;
    this.faults++;
    if (kind === "decode") this.decodeFaults++;
    else if (kind === "translation") this.translationFaults++;
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
    if (!Number.isInteger(this.inFlight) || this.inFlight < 0) {
      throw new MachineError("CORRUPT", `DmaPort.check: inFlight is ${this.inFlight}`);
    }
    if (this.faults !== this.decodeFaults + this.accessFaults + this.translationFaults) {
      throw new MachineError(
        "CORRUPT",
        "DmaPort.check: faults differ from decode + access + translation",
      );
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
    translationFaults: number;
  } {
    return {
      transfers: this.transfers,
      segments: this.segments,
      bytes: this.bytes,
      faults: this.faults,
      decodeFaults: this.decodeFaults,
      accessFaults: this.accessFaults,
      translationFaults: this.translationFaults,
    };
  }

  /** A scatter-gather transfer: the list checked, then its runs moved by RAM, then counted. */
  #sg(
    op: "read" | "write",
    segs: ArrayLike<number>,
    nsegs: number,
    buf: Uint8Array,
    offset: number,
  ): number {
    const total = this.#list(segs, nsegs, buf.length - offset, op);
    if (total < 0) return -1;
    let runs: Float64Array = this.#runs, count = this.#runCount;
    const t = this.#translator;
    if (t !== null) {
      count = t.translate(this.#source, this, op === "write", runs, count);
      if (count < 0) return -1;
      runs = t.out;
    }
    try {
      if (op === "read") this.#ram.readSg(runs, count, buf, offset);
      else this.#ram.writeSg(runs, count, buf, offset);
    } catch (e) {
      if (!(e instanceof MachineFault)) throw e;
      return t === null ? this.#decodeFault(segs, nsegs, op) : this.#runFault(runs, count, op);
    }
    this.#count(nsegs, total);
    this.monitor?.transferred(this, op, segs, nsegs);
    return total;
  }

  #count(segments: number, bytes: number): void {
    this.transfers++;
    this.segments += segments;
    this.bytes += bytes;
  }

  #watch(op: "read" | "write", pa: number, len: number): void {
    if (this.monitor === null) return;
    this.#one[0] = pa;
    this.#one[1] = len;
    this.monitor.transferred(this, op, this.#one, 1);
  }

  /** Checks one segment against the constraints; records an access fault on refusal. */
  #segment(pa: number, len: number, op: "read" | "write"): boolean {
    const why = segmentProblem(this.limits, pa, len);
    if (why === null && len <= this.limits.maxTransfer) return true;
    return this.fault(
      "access",
      op,
      pa,
      len,
      why ?? `transfer of ${len} bytes exceeds the device's largest of ${this.limits.maxTransfer}`,
    );
  }

  /**
   * A one-segment transfer through the translator: the segment checked,
   * translated, its RAM runs checked, then moved (a `fill` when `buf` is
   * null). False, moving nothing, on a fault.
   */
  #translated(
    op: "read" | "write" | "fill",
    pa: number,
    len: number,
    buf: Uint8Array | null,
    offset: number,
    byte: number,
  ): boolean {
    const dir = op === "read" ? "read" : "write";
    if (!this.#segment(pa, len, dir)) return false;
    const n = this.#translateOne(pa, len, dir);
    if (n < 0) return false;
    const runs = this.#translator!.out;
    if (buf === null) {
      for (let i = 0; i < n; i++) this.#ram.fill(runs[2 * i]!, runs[2 * i + 1]!, byte);
    } else if (op === "read") this.#ram.readSg(runs, n, buf, offset);
    else this.#ram.writeSg(runs, n, buf, offset);
    this.#count(1, len);
    this.#watch(dir, pa, len);
    return true;
  }

  /**
   * Translates the one segment `[pa, pa + len)` and checks its RAM runs are
   * RAM; returns their count in the translator's `out`, or -1 after
   * recording the fault.
   */
  #translateOne(pa: number, len: number, op: "read" | "write"): number {
    this.#one[0] = pa;
    this.#one[1] = len;
    const t = this.#translator!;
    const n = t.translate(this.#source, this, op === "write", this.#one, 1);
    if (n < 0) return -1;
    for (let i = 0; i < n; i++) {
      const why = this.#ram.rangeProblem(t.out[2 * i]!, t.out[2 * i + 1]!);
      if (why !== null) return this.#runFault(t.out, n, op);
    }
    return n;
  }

  /**
   * Records RAM's refusal of translated runs as a decode fault naming the
   * first RAM run that is not all RAM (where the device's tables sent it).
   */
  #runFault(runs: Float64Array, n: number, op: "read" | "write"): -1 {
    for (let i = 0; i < n; i++) {
      const pa = runs[2 * i]!, len = runs[2 * i + 1]!;
      const why = this.#ram.rangeProblem(pa, len);
      if (why !== null) {
        this.fault("decode", op, pa, len, `translated to ${hex(pa)}: ${why}`);
        return -1;
      }
    }
    throw new MachineError("CORRUPT", "DmaPort: RAM refused translated runs that are all RAM");
  }

  #decode(pa: number, len: number, op: "read" | "write"): boolean {
    const why = this.#ram.rangeProblem(pa, len);
    return why === null ? true : this.fault("decode", op, pa, len, why);
  }

  /**
   * Records RAM's refusal of a list as a decode fault naming the first
   * segment that is not all RAM (the runs RAM was given may join several).
   */
  #decodeFault(segs: ArrayLike<number>, nsegs: number, op: "read" | "write"): -1 {
    for (let i = 0; i < nsegs; i++) {
      const pa = segs[2 * i]!, len = segs[2 * i + 1]!;
      const why = this.#ram.rangeProblem(pa, len);
      if (why !== null) {
        this.fault("decode", op, pa, len, why);
        return -1;
      }
    }
    throw new MachineError("CORRUPT", "DmaPort: RAM refused a list whose every segment is RAM");
  }

  /** Runs of the list last checked by {@link #list}. */
  #runCount = 0;

  /**
   * Checks a list against the constraints and gathers its runs (segments
   * that follow one another in RAM, joined) into #runs; returns its total
   * length, or -1 after recording the fault. Whether the runs are RAM is
   * left to {@link Ram.readSg} and {@link Ram.writeSg}, which check it before
   * moving a byte. A segment that passes the few comparisons here is legal;
   * any other goes through the full segment check, which words the fault.
   */
  #list(segs: ArrayLike<number>, nsegs: number, room: number, op: "read" | "write"): number {
    if (
      typeof nsegs !== "number" || !Number.isInteger(nsegs) || nsegs < 1 ||
      segs === null || typeof segs !== "object" || 2 * nsegs > segs.length
    ) {
      this.fault("access", op, 0, 0, `segment count ${hex(nsegs)} is not in [1, list length]`);
      return -1;
    }
    const first = segs[0];
    if (nsegs > this.limits.maxSegments) {
      this.fault(
        "access",
        op,
        first as number,
        0,
        `${nsegs} segments exceed the maximum of ${this.limits.maxSegments}`,
      );
      return -1;
    }
    if (this.#runs.length < 2 * nsegs) this.#runs = new Float64Array(2 * nsegs);
    const runs = this.#runs;
    const minAddress = this.#minAddress, maxAddress = this.#maxAddress;
    const boundary = this.#boundary;
    const perAlign = this.#perAlignment, perBoundary = this.#perBoundary;
    const maxLen = this.#maxSegmentSize;
    let total = 0, r = -2, end = -1;
    const alignMask = this.#alignment - 1;
    const smallBoundary = boundary !== 0 && boundary <= 0x40000000, boundaryMask = boundary - 1;
    if (segs instanceof Float64Array) {
      // A loop of its own, so that V8 reads the list's elements as doubles
      // (one kind of array: the loop over any list costs half again as much).
      // Every element is a number. Below 2^31 (`x | 0` is `x` exactly when
      // `x` is such an integer) the tests are 32-bit integer ones; above it
      // `pa * (1 / alignment)` is exact (a power of two), so it is an integer
      // exactly when `pa` is an aligned integer. NaN fails every comparison.
      // The boundary test is the offset in the boundary window plus the length.
      for (let j = 0; j < 2 * nsegs; j += 2) {
        const pa = segs[j]!, len = segs[j + 1]!;
        if (
          !(pa >= minAddress && len >= 1 && len <= maxLen && pa <= maxAddress - (len - 1) &&
            ((pa | 0) === pa && (len | 0) === len
              ? (pa & alignMask) === 0 &&
                (boundary === 0 ||
                  (smallBoundary ? (pa & boundaryMask) + len <= boundary : pa + len <= boundary))
              : Math.floor(pa * perAlign) === pa * perAlign && Math.floor(len) === len &&
                (boundary === 0 ||
                  pa - Math.floor(pa * perBoundary) * boundary + len <= boundary))) &&
          !this.#segment(pa, len, op)
        ) {
          return -1;
        }
        r = this.#join(runs, r, pa, end, len);
        end = pa + len;
        total += len;
      }
      return this.#finishList(first as number, r, total, room, op);
    }
    for (let j = 0; j < 2 * nsegs; j += 2) {
      const pa = segs[j]!, len = segs[j + 1]!;
      // Types first: anything but a number (a BigInt) is refused before any
      // arithmetic; then the tests of the typed loop, in floating point.
      if (
        !(typeof pa === "number" && typeof len === "number" &&
          Math.floor(pa * perAlign) === pa * perAlign && pa >= minAddress &&
          Math.floor(len) === len && len >= 1 && len <= maxLen && pa <= maxAddress - (len - 1) &&
          (boundary === 0 || pa - Math.floor(pa * perBoundary) * boundary + len <= boundary)) &&
        !this.#segment(pa, len, op)
      ) {
        return -1;
      }
      r = this.#join(runs, r, pa, end, len);
      end = pa + len;
      total += len;
    }
    return this.#finishList(first as number, r, total, room, op);
  }

  /**
   * Adds the segment `[pa, pa + len)` to the runs ending at pair `r` (the
   * last run ends at `end`): it extends that run when it follows it in RAM.
   * Returns the index of the last run's pair.
   */
  #join(runs: Float64Array, r: number, pa: number, end: number, len: number): number {
    if (pa === end) {
      runs[r + 1]! += len;
      return r;
    }
    runs[r + 2] = pa;
    runs[r + 3] = len;
    return r + 2;
  }

  /** The checks on a whole list once its segments passed: its total against the limits and the room. */
  #finishList(first: number, r: number, total: number, room: number, op: "read" | "write"): number {
    this.#runCount = (r + 2) >> 1;
    if (total > this.limits.maxTransfer) {
      this.fault(
        "access",
        op,
        first,
        total,
        `transfer of ${total} bytes exceeds the device's largest of ${this.limits.maxTransfer}`,
      );
      return -1;
    }
    if (total > room) {
      this.fault(
        "access",
        op,
        first,
        total,
        `list of ${total} bytes exceeds the ${room}-byte buffer`,
      );
      return -1;
    }
    return total;
  }
}
