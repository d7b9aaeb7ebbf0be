/**
 * Recorders that write a run's allocations as replay traces (the format of
 * spec/replay.md), together with the output the run itself saw, so that a
 * replay of the trace can be checked line for line against the run.
 *
 * @module
 */

import type { VmemRecorder } from "../mm/kmem.ts";
import { VMC_IDENTIFIER, VMC_NO_QCACHE, type Vmem } from "../mm/vmem.ts";

/** A trace being written: operations and the results the run got. */
export class Trace {
  /** Trace lines (JSON objects, one per operation, plus `#` comments). */
  readonly lines: string[] = [];
  /** The output line the run got for each operation, in order. */
  readonly results: string[] = [];

  /** Adds a comment line (replay skips it). */
  comment(text: string): void {
    for (const line of text.split("\n")) this.lines.push(`# ${line}`);
  }

  /** Adds an operation and the result the run got. */
  op(op: Record<string, unknown>, result: Record<string, unknown>): void {
    this.lines.push(JSON.stringify(op));
    this.results.push(JSON.stringify(result));
  }

  /** The trace as file text. */
  text(): string {
    return this.lines.join("\n") + "\n";
  }
}

/** Records vmem operations of the kernel heap and its identifier arenas. */
export class VmemTrace extends Trace implements VmemRecorder {
  /** Records `vmem_create` of `arena` with its first span. */
  create(arena: Vmem, base: number, size: number): void {
    const flags: string[] = [];
    if (arena.cflags & VMC_IDENTIFIER) flags.push("identifier");
    if (arena.cflags & VMC_NO_QCACHE) flags.push("no_qcache");
    this.op({
      op: "create",
      arena: arena.name,
      base,
      size,
      quantum: arena.quantum,
      qcache_max: arena.qcacheMax,
      source: arena.source?.name ?? null,
      flags,
    }, { ok: true });
  }

  /** Records an allocation and the address it returned (0: failure). */
  alloc(arena: Vmem, size: number, flags: string[], addr: number): void {
    this.op({ op: "alloc", arena: arena.name, size, flags }, { addr: addr === 0 ? null : addr });
  }

  /** Records a free. */
  free(arena: Vmem, addr: number, size: number): void {
    this.op({ op: "free", arena: arena.name, addr, size }, { ok: true });
  }

  /** Records a walk of `arena` and what it showed. */
  walk(arena: Vmem, types: string[], segs: [string, number, number][]): void {
    this.op({ op: "walk", arena: arena.name, types }, { segs });
  }

  /** Records a `size` query and its answer. */
  size(arena: Vmem, types: string[], size: number): void {
    this.op({ op: "size", arena: arena.name, types }, { size });
  }
}

/** Records uvm_pglistalloc operations and the page traffic around them. */
export class PglistTrace extends Trace {
  #lists = 0;
  readonly #ids = new WeakMap<object, number>();

  /** Records the page size and reserves (must come first). */
  config(pageSize: number, reservePagedaemon: number, reserveKernel: number): void {
    this.op({
      op: "config",
      page_size: pageSize,
      reserve_pagedaemon: reservePagedaemon,
      reserve_kernel: reserveKernel,
    }, { ok: true });
  }

  /** Records uvm_page_physload. */
  physload(
    start: number,
    end: number,
    availStart: number,
    availEnd: number,
    freelist: number,
  ): void {
    this.op({
      op: "physload",
      start,
      end,
      avail_start: availStart,
      avail_end: availEnd,
      freelist,
    }, { ok: true });
  }

  /** Records pages taken outside uvm_pglistalloc (uvm_pagealloc). */
  claim(runs: [number, number][]): void {
    if (runs.length > 0) this.op({ op: "claim", pfns: runs }, { ok: true });
  }

  /** Records pages given back outside uvm_pglistfree (uvm_pagefree). */
  release(runs: [number, number][]): void {
    if (runs.length > 0) this.op({ op: "release", pfns: runs }, { ok: true });
  }

  /** Records a uvm_pglistalloc attempt: its list and runs, or its error code. */
  alloc(
    args: {
      size: number;
      low: number;
      high: number;
      alignment: number;
      boundary: number;
      nsegs: number;
    },
    list: object | null,
    runs: [number, number][] | null,
    error: string | null,
  ): void {
    const op = { op: "alloc", ...args, waitok: false };
    if (list === null || runs === null) {
      this.op(op, { error: error ?? "ENOMEM" });
      return;
    }
    const k = ++this.#lists;
    this.#ids.set(list, k);
    this.op(op, { list: k, pages: runs });
  }

  /** Records uvm_pglistfree of a list recorded by {@link alloc}. */
  free(list: object): void {
    const k = this.#ids.get(list);
    if (k !== undefined) this.op({ op: "free", list: k }, { ok: true });
  }

  /** True when `list` was recorded as an `alloc` (and so is freed with `free`). */
  recorded(list: object): boolean {
    return this.#ids.has(list);
  }

  /** Records a `state` query and the free runs and hints the run saw. */
  state(free: [number, number][], hints: number[]): void {
    this.op({ op: "state" }, { free, hints });
  }
}
