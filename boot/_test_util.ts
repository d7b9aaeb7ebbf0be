/**
 * What the kernel's tests share: the leaks of a clean shutdown.
 *
 * @module
 */

import type { KernelLeaks } from "./kernel.ts";

/** What `Kernel.shutdown` reports when everything came back. */
export const NO_LEAKS: Readonly<KernelLeaks> = Object.freeze({
  pages: 0,
  heapBytes: 0,
  kvaBytes: 0,
  ids: 0,
  pageLists: 0,
  handlers: 0,
  dmaMaps: 0,
  dmaMemory: 0,
  dmaTags: 0,
});
