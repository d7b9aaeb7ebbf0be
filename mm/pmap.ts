/**
 * The kernel pmap: the page table that turns kernel virtual addresses into
 * physical ones (pmap_kenter_pa, pmap_kremove, pmap_extract), and the
 * kernel's loads and stores through it.
 *
 * Theory. The kernel owns one virtual window `[vaBase, vaBase + vaSize)`.
 * Its page table is a two-level radix tree, as an x86 or arm64 page table
 * is: a directory indexed by the high bits of the virtual page number, whose
 * entries are leaf tables of {@link PTES_PER_LEAF} entries, created on the
 * first mapping they hold. A page-table entry is one float64:
 * `pfn * 4 + prot` for a valid mapping, 0 for none (`prot` always has
 * {@link VM_PROT_READ}, so a valid entry is never 0). Entries stay exact
 * for frame numbers below 2^51.
 *
 * Invariants: `mappedPages` counts the valid entries; a leaf's `used`
 * count is the number of valid entries in it. Loads and stores through an
 * unmapped page, or stores through a read-only one, are page faults
 * (`EFAULT`) raised before any byte moves.
 *
 * Cost: enter, remove and extract are O(1) per page; extracting a range
 * (what bus_dma's load does) costs one directory lookup per leaf table and
 * then one entry read per page; a load or store of `n` bytes costs one
 * lookup per page it touches plus the copy. Page offsets are taken from
 * `vaBase` by floor, never by `%`, which on addresses past 2^31 is a slow
 * floating-point remainder. Leaf tables are created once and reused, so
 * steady-state mapping allocates nothing.
 *
 * @module
 */

import { checkInteger, describe, KernelError } from "./errors.ts";

/** What the pmap needs of physical memory: bulk loads and stores by physical address. */
export interface PhysicalAccess {
  /** Copies `dst.length` bytes at physical address `pa` into `dst`. */
  read(pa: number, dst: Uint8Array): void;
  /** Copies `src` to physical address `pa`. */
  write(pa: number, src: Uint8Array): void;
  /** Sets `len` bytes at physical address `pa` to `byte`. */
  fill(pa: number, len: number, byte: number): void;
}

/** Readable mapping. */
export const VM_PROT_READ = 1;
/** Writable mapping. */
export const VM_PROT_WRITE = 2;
/** The usual protection of kernel heap pages. */
export const VM_PROT_RW: number = VM_PROT_READ | VM_PROT_WRITE;

/** Entries per leaf table (a 4 KiB table of 8-byte entries, as on amd64). */
export const PTES_PER_LEAF = 512;

/** The kernel page table over one virtual window. */
export class Pmap {
  /** First kernel virtual address the pmap covers. */
  readonly vaBase: number;
  /** Bytes of kernel virtual space covered. */
  readonly vaSize: number;
  /** Page size in bytes (a power of two). */
  readonly pageSize: number;
  readonly #phys: PhysicalAccess;
  readonly #dir: (Float64Array | undefined)[];
  readonly #used: Int32Array;
  #mapped = 0;

  /** A pmap for `[vaBase, vaBase + vaSize)` over `phys`, with pages of `pageSize` bytes. */
  constructor(phys: PhysicalAccess, vaBase: number, vaSize: number, pageSize?: number) {
    if (pageSize === undefined) pageSize = 4096;
    checkInteger("pageSize", pageSize, 512, 1 << 30);
    if ((pageSize & (pageSize - 1)) !== 0) {
      throw new KernelError("EINVAL", `pageSize must be a power of two, got ${pageSize}`);
    }
    checkInteger("vaBase", vaBase);
    checkInteger("vaSize", vaSize, pageSize);
    checkInteger("vaBase + vaSize", vaBase + vaSize);
    if (vaBase % pageSize !== 0 || vaSize % pageSize !== 0) {
      throw new KernelError(
        "EINVAL",
        `the pmap window [${vaBase}, +${vaSize}) must be page-aligned (${pageSize})`,
      );
    }
    this.#phys = phys;
    this.vaBase = vaBase;
    this.vaSize = vaSize;
    this.pageSize = pageSize;
    const leaves = Math.ceil(vaSize / pageSize / PTES_PER_LEAF);
    this.#dir = new Array<Float64Array | undefined>(leaves).fill(undefined);
    this.#used = new Int32Array(leaves);
  }

  /** Number of valid kernel mappings. */
  get mappedPages(): number {
    return this.#mapped;
  }

  /**
   * pmap_kenter_pa: maps the page at `va` to the physical page at `pa` with
   * `prot`. Entering a page that is already mapped is refused, as the kernel
   * pmap asserts; remove it first.
   */
  enter(va: number, pa: number, prot?: number): void {
    if (prot === undefined) prot = VM_PROT_RW;
    const vpn = this.#vpn("va", va);
    checkInteger("pa", pa);
    if (pa % this.pageSize !== 0) {
      throw new KernelError("EINVAL", `pa ${pa} is not page-aligned`);
    }
    if (prot !== VM_PROT_READ && prot !== VM_PROT_RW) {
      throw new KernelError("EINVAL", `prot must be READ or READ|WRITE, got ${describe(prot)}`);
    }
    const li = Math.floor(vpn / PTES_PER_LEAF);
    const slot = vpn - li * PTES_PER_LEAF;
    let leaf = this.#dir[li];
    if (leaf !== undefined && leaf[slot] !== 0) {
      throw new KernelError("EEXIST", `va 0x${va.toString(16)} is already mapped`);
    }
    if (leaf === undefined) leaf = this.#dir[li] = new Float64Array(PTES_PER_LEAF);
    leaf[slot] = (pa / this.pageSize) * 4 + prot;
    this.#used[li]!++;
    this.#mapped++;
  }

  /**
   * pmap_kremove: unmaps every page of `[va, va + len)`. All of them must be
   * mapped; otherwise nothing is removed.
   */
  remove(va: number, len: number): void {
    const first = this.#vpn("va", va);
    checkInteger("len", len, this.pageSize);
    if (len % this.pageSize !== 0) {
      throw new KernelError("EINVAL", `len ${len} is not a multiple of the page size`);
    }
    const pages = len / this.pageSize;
    this.#vpn("va + len - 1", va + len - 1);
    for (let i = 0; i < pages; i++) {
      if (this.#pte(first + i) === 0) {
        throw new KernelError(
          "EINVAL",
          `pmap_kremove: va 0x${(va + i * this.pageSize).toString(16)} is not mapped`,
        );
      }
    }
    for (let i = 0; i < pages; i++) {
      const vpn = first + i;
      const li = Math.floor(vpn / PTES_PER_LEAF);
      this.#dir[li]![vpn - li * PTES_PER_LEAF] = 0;
      this.#used[li]!--;
    }
    this.#mapped -= pages;
  }

  /**
   * pmap_extract: the physical address `va` maps to, or -1 when it is
   * unmapped (outside the window included). Refuses (EINVAL) a `va` that is
   * not an integer, whatever its type.
   */
  extract(va: number): number {
    if (!Number.isInteger(va)) badVa(va);
    const rel = va - this.vaBase;
    if (!(rel >= 0 && rel < this.vaSize)) return -1;
    const ps = this.pageSize;
    const vpn = Math.floor(rel / ps);
    const pte = this.#pte(vpn);
    return pte === 0 ? -1 : Math.floor(pte / 4) * ps + (rel - vpn * ps);
  }

  /**
   * pmap_extract over a range: writes into `out[0 ..]` the physical address
   * of each page `[va, va + len)` touches (the page's start: add `va`'s
   * offset in its page for the first), in order, and stops at the first page
   * that is unmapped or outside the window. Returns how many it wrote: all
   * the range's pages when every one is mapped. One directory lookup per
   * leaf table, then consecutive entries; allocates nothing. Throws `EINVAL`,
   * writing nothing, for a `va` that is not an integer, a bad `len` or when
   * `out` is too short for the range's pages.
   */
  extractPages(va: number, len: number, out: Float64Array): number {
    if (!Number.isInteger(va)) badVa(va);
    checkInteger("len", len);
    if (!(out instanceof Float64Array)) {
      throw new KernelError("EINVAL", `out must be a Float64Array, got ${describe(out)}`);
    }
    const rel = va - this.vaBase;
    if (len === 0 || !(rel >= 0 && rel < this.vaSize)) return 0;
    const ps = this.pageSize;
    // Products with the exact reciprocals of these powers of two stand for
    // divisions, which cost several times more.
    const perPage = 1 / ps;
    const first = Math.floor(rel * perPage);
    // Pages of the range: its last byte may lie past 2^53 or the window;
    // those pages are never mapped, so the walk stops at the window's end.
    const pages = Math.floor((rel - first * ps + len - 1) * perPage) + 1;
    if (pages > out.length) {
      throw new KernelError(
        "EINVAL",
        `out holds ${out.length} pages, [0x${va.toString(16)}, +${len}) touches ${pages}`,
      );
    }
    const last = Math.min(first + pages, this.vaSize / ps); // exclusive
    let vpn = first, n = 0;
    while (vpn < last) {
      const li = Math.floor(vpn * (1 / PTES_PER_LEAF));
      const leaf = this.#dir[li];
      if (leaf === undefined) return n;
      const leafStart = li * PTES_PER_LEAF;
      const end = Math.min(last - leafStart, PTES_PER_LEAF);
      for (let slot = vpn - leafStart; slot < end; slot++) {
        const pte = leaf[slot]!;
        if (pte === 0) return n;
        out[n++] = Math.floor(pte * 0.25) * ps;
      }
      vpn = leafStart + end;
    }
    return n;
  }

  /** Copies `dst.length` bytes at kernel virtual address `va` into `dst`. */
  read(va: number, dst: Uint8Array): void {
    checkBytes("dst", dst);
    this.#access(va, dst.length, false);
    this.#walk(va, dst.length, (pa, off, n) => this.#phys.read(pa, dst.subarray(off, off + n)));
  }

  /** Copies `src` to kernel virtual address `va`. */
  write(va: number, src: Uint8Array): void {
    checkBytes("src", src);
    this.#access(va, src.length, true);
    this.#walk(va, src.length, (pa, off, n) => this.#phys.write(pa, src.subarray(off, off + n)));
  }

  /** Sets `len` bytes at kernel virtual address `va` to `byte`. */
  fill(va: number, len: number, byte: number): void {
    checkInteger("byte", byte, 0, 255);
    this.#access(va, len, true);
    this.#walk(va, len, (pa, _off, n) => this.#phys.fill(pa, n, byte));
  }

  /** Verifies the leaf counts and the mapping count against the tables. */
  check(): void {
    let total = 0;
    for (let li = 0; li < this.#dir.length; li++) {
      const leaf = this.#dir[li];
      let used = 0;
      if (leaf !== undefined) {
        for (let i = 0; i < PTES_PER_LEAF; i++) {
          const pte = leaf[i]!;
          if (pte === 0) continue;
          const prot = pte % 4;
          if (!Number.isInteger(pte) || (prot !== VM_PROT_READ && prot !== VM_PROT_RW)) {
            throw new KernelError("CORRUPT", `pmap: corrupt pte ${pte} at leaf ${li} slot ${i}`);
          }
          used++;
        }
      }
      if (used !== this.#used[li]) {
        throw new KernelError(
          "CORRUPT",
          `pmap: leaf ${li} counts ${this.#used[li]} mappings, holds ${used}`,
        );
      }
      total += used;
    }
    if (total !== this.#mapped) {
      throw new KernelError(
        "CORRUPT",
        `pmap: ${this.#mapped} mappings counted, ${total} in the tables`,
      );
    }
  }

  #vpn(name: string, va: number): number {
    checkInteger(name, va);
    if (va < this.vaBase || va >= this.vaBase + this.vaSize) {
      throw new KernelError(
        "EINVAL",
        `${name} 0x${va.toString(16)} is outside the kernel window ` +
          `[0x${this.vaBase.toString(16)}, 0x${(this.vaBase + this.vaSize).toString(16)})`,
      );
    }
    return Math.floor((va - this.vaBase) / this.pageSize);
  }

  #pte(vpn: number): number {
    const li = Math.floor(vpn / PTES_PER_LEAF);
    const leaf = this.#dir[li];
    return leaf === undefined ? 0 : leaf[vpn - li * PTES_PER_LEAF]!;
  }

  /** Faults unless every page of `[va, va + len)` is mapped (and writable for a store). */
  #access(va: number, len: number, store: boolean): void {
    checkInteger("len", len);
    if (len === 0) return;
    const first = this.#vpn("va", va);
    const last = this.#vpn("va + len - 1", va + len - 1);
    for (let vpn = first; vpn <= last; vpn++) {
      const pte = this.#pte(vpn);
      if (pte === 0 || (store && ((pte - Math.floor(pte / 4) * 4) & VM_PROT_WRITE) === 0)) {
        const at = this.vaBase + vpn * this.pageSize;
        throw new KernelError(
          "EFAULT",
          `page fault: ${store ? "store to" : "load from"} ${
            pte === 0 ? "unmapped" : "read-only"
          } ` +
            `kernel page 0x${at.toString(16)}`,
        );
      }
    }
  }

  #walk(va: number, len: number, fn: (pa: number, off: number, n: number) => void): void {
    let off = 0;
    while (off < len) {
      const rel = va + off - this.vaBase;
      const vpn = Math.floor(rel / this.pageSize);
      const inPage = rel - vpn * this.pageSize;
      const n = Math.min(this.pageSize - inPage, len - off);
      const pte = this.#pte(vpn);
      fn(Math.floor(pte / 4) * this.pageSize + inPage, off, n);
      off += n;
    }
  }
}

/** Refuses a virtual address that is not an integer (of any type). */
function badVa(va: unknown): never {
  throw new KernelError("EINVAL", `va must be an integer, got ${describe(va)}`);
}

/** Refuses a buffer argument that is not a Uint8Array. */
function checkBytes(name: string, bytes: unknown): void {
  if (!(bytes instanceof Uint8Array)) {
    throw new KernelError("EINVAL", `${name} must be a Uint8Array, got ${describe(bytes)}`);
  }
}
