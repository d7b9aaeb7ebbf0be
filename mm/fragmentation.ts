/**
 * How fragmented an arena's memory is, from its spans and segments: what
 * the experiments report for an arena at a workload's peak and at rest, and
 * for a trace replayed under each policy.
 *
 * - footprint: the bytes in the arena's spans, static and imported (what the
 *   arena holds, whether allocated or not);
 * - free segments, free bytes and the largest free segment;
 * - fragmentation: 1 - largest free segment / free bytes, 0 with nothing
 *   free. 0 means all free space is one piece; near 1, the free space is in
 *   many small pieces and a request of the free total fails.
 *
 * A {@link FigureTally} adds segments up as a walk reports them (one pass,
 * nothing kept per segment); several arenas may be added into one tally.
 *
 * @module
 */

import { VMEM_ALLOC, VMEM_FREE, VMEM_SPAN } from "./vmem.ts";

/** Figures of one arena, or of several added together. */
export interface ArenaFigures {
  /** Arena name (names joined with "+" for several). */
  name: string;
  /** Bytes (or identifiers) allocated, as its allocated segments give them. */
  inUse: number;
  /** Bytes in its spans, static and imported. */
  footprint: number;
  /** Spans. */
  spans: number;
  /** Bytes in free segments. */
  freeBytes: number;
  /** Free segments. */
  freeSegments: number;
  /** Bytes in the largest free segment. */
  largestFree: number;
  /** 1 - largestFree / freeBytes; 0 when nothing is free. */
  fragmentation: number;
}

/** 1 - largest / free, 0 when `free` is 0. */
export function fragmentation(largest: number, free: number): number {
  return free === 0 ? 0 : 1 - largest / free;
}

/** Adds up spans and segments as a walk reports them. */
export class FigureTally {
  #inUse = 0;
  #footprint = 0;
  #spans = 0;
  #freeBytes = 0;
  #freeSegments = 0;
  #largestFree = 0;

  /** Counts one segment: `type` is "span", "alloc" or "free" (anything else is ignored). */
  add(type: string, size: number): void {
    if (type === "span") {
      this.#spans++;
      this.#footprint += size;
    } else if (type === "alloc") {
      this.#inUse += size;
    } else if (type === "free") {
      this.#freeSegments++;
      this.#freeBytes += size;
      if (size > this.#largestFree) this.#largestFree = size;
    }
  }

  /** The figures so far, under `name`. */
  figures(name: string): ArenaFigures {
    return {
      name,
      inUse: this.#inUse,
      footprint: this.#footprint,
      spans: this.#spans,
      freeBytes: this.#freeBytes,
      freeSegments: this.#freeSegments,
      largestFree: this.#largestFree,
      fragmentation: fragmentation(this.#largestFree, this.#freeBytes),
    };
  }
}

/** Something that walks its segments as vmem does: `(start, size, type)` per segment. */
export interface Walkable {
  /** Arena name. */
  readonly name: string;
  /** Calls `fn` for each segment whose type is in `typemask`. */
  walk(typemask: number, fn: (start: number, size: number, type: string) => void): void;
}

/** The figures of `arena` now, from one walk of its segments. */
export function arenaFigures(arena: Walkable): ArenaFigures {
  const t = new FigureTally();
  arena.walk(VMEM_ALLOC | VMEM_FREE | VMEM_SPAN, (_start, size, type) => t.add(type, size));
  return t.figures(arena.name);
}
