/**
 * The kernel's memory management, usable on its own:
 *
 * - vmem arenas, illumos's ({@link Vmem}) and FreeBSD's
 *   ({@link VmemFreeBSD}): allocators of any set of integers up to
 *   `2^53 - 1` (addresses, I/O virtual addresses, identifiers).
 * - NetBSD's physical memory: segments, the page array, free lists
 *   ({@link Uvm}) and `uvm_pglistalloc` ({@link pglistAlloc}).
 * - the kernel pmap, the page-backed kernel heap ({@link Kmem}, over vmem),
 *   the page cache and its daemon, bus_dma ({@link BusDma}) with its
 *   debugging, and the IOMMU's driver.
 * - allocation traces: replay ({@link replayText}), replay under another
 *   policy and comparison of policies ({@link compareTrace}).
 *
 * @example An identifier arena
 * ```ts
 * import { VM_NOSLEEP, Vmem } from "./mod.ts";
 *
 * const ids = Vmem.create("ids", 1, 1000, 1);
 * const id = ids.alloc(1, VM_NOSLEEP); // 1
 * ids.free(id, 1);
 * ```
 *
 * @example Sixteen contiguous pages below 16 MiB
 * ```ts
 * import { loadRam, pglistAlloc, pglistFree, Uvm } from "./mod.ts";
 *
 * const uvm = new Uvm();
 * loadRam(uvm, [{ base: 0x100000, size: 64 * 2 ** 20 }]);
 * const list = pglistAlloc(uvm, 16 * 4096, 0, 2 ** 24, 65536, 0, 1);
 * pglistFree(uvm, list);
 * ```
 *
 * @module
 */

export { KernelError, type KernelErrorCode, MAX_ADDR } from "./errors.ts";
export {
  type ImportFn,
  type ReleaseFn,
  VM_ABORT,
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
  type VmemCreateOptions,
  VmemGroup,
  type VmemOrder,
  type VmemStats,
  type VmemSummary,
} from "./vmem.ts";
export {
  type PhysSegInfo,
  type PhysSegStrategy,
  VM_FREELIST_DEFAULT,
  VM_FREELIST_FIRST16,
  VM_FREELIST_FIRST4G,
  VM_NFREELIST,
} from "./physseg.ts";
export {
  loadRam,
  type PageDaemonHooks,
  type RamRegion,
  Uvm,
  UVM_PGA_FALLBACK,
  UVM_PGA_PAGEDAEMON,
  UVM_PGA_USERESERVE,
  type UvmOptions,
  type UvmTracer,
} from "./page.ts";
export { PageList, pglistAlloc, pglistAllocWait, pglistFree, pglistTryAlloc } from "./pglist.ts";
export { type PhysicalAccess, Pmap, VM_PROT_READ, VM_PROT_RW, VM_PROT_WRITE } from "./pmap.ts";
export {
  Kmem,
  KMEM_ALIGN,
  KMEM_POLICIES,
  KMEM_QCACHE_MAX,
  type KmemOptions,
  type KmemPolicy,
  type KmemStats,
  OWNER_CACHE,
  OWNER_DMA,
  OWNER_KMEM,
  type VmemRecorder,
} from "./kmem.ts";
export { type QcacheStats } from "./vmem_qcache.ts";
export { type FreeBSDQcacheStats } from "./vmem_freebsd_qcache.ts";
export {
  type FreeBSDImportFn,
  type FreeBSDImportOptions,
  type FreeBSDReclaimFn,
  type FreeBSDReleaseFn,
  M_BESTFIT,
  M_FIRSTFIT,
  M_NEXTFIT,
  M_NOWAIT,
  M_WAITOK,
  VMEM_MAXFREE,
  VMEM_QCACHE_IDX_MAX,
  VmemFreeBSD,
  type VmemFreeBSDCreateOptions,
  type VmemFreeBSDTracer,
} from "./vmem_freebsd.ts";
export {
  allocFailed,
  type Arena,
  arenaDestroy,
  arenaImported,
  arenaReap,
  type VmemFlavor,
} from "./arena.ts";
export { PageCache, PageDaemon, type PageDaemonStats, type PageFrames } from "./pdaemon.ts";
export {
  BOUNCE_RESERVE_MAX,
  type BouncePoolStats,
  BUS_DMA_NOWAIT,
  BUS_DMA_WAITOK,
  BUS_DMASYNC_POSTREAD,
  BUS_DMASYNC_POSTWRITE,
  BUS_DMASYNC_PREREAD,
  BUS_DMASYNC_PREWRITE,
  BusDma,
  type BusDmaStats,
  DEFAULT_BOUNCE_PAGES,
  type DmaBackend,
  type DmaDebugHooks,
  type DmaIommu,
  DmaMap,
  type DmaMemory,
  type DmaSource,
  DmaTag,
  type DmaTagOptions,
  type KernelVirtual,
  type PageRuns,
} from "./bus_dma.ts";

export {
  type IommuBackend,
  type IommuDevice,
  IommuDomain,
  type IommuDomainSummary,
  IommuDriver,
  type IommuSummary,
  IOVA_QCACHE_MAX,
  IOVA_QCACHE_MIN_ARENA,
} from "./iommu.ts";
export {
  DmaDebug,
  type DmaViolation,
  type DmaViolationKind,
  VIOLATIONS_LISTED,
} from "./dma_debug.ts";
export { type Replayer, REPLAYERS, replayLine, replayText } from "./replayer.ts";
export { VmemReplayer } from "./replay_vmem.ts";
export { PglistReplayer } from "./replay_pglist.ts";
export { VmemFreeBSDReplayer } from "./replay_vmem_freebsd.ts";
export { NamedAllocations, type OpApplier } from "./replay_named.ts";
export {
  kindPolicy,
  POLICY_WORDS,
  PolicyReplayer,
  policyReplayer,
  REPLAY_POLICIES,
  type ReplayPolicy,
  replayPolicy,
} from "./replay_policy.ts";
export {
  type ArenaSegments,
  type CompareOptions,
  type CompareSample,
  compareTrace,
  type Comparison,
  comparisonJson,
  comparisonTable,
  type PolicyFigures,
  type PolicyRun,
  type RefusedLine,
} from "./replay_compare.ts";
export { comparisonSvg } from "./replay_picture.ts";
export { type ArenaFigures, arenaFigures, type Walkable } from "./fragmentation.ts";
// Types of the hardware that this folder's signatures name.
export type {
  DmaConstraints,
  DmaFault,
  DmaFaultKind,
  DmaLimits,
  DmaMonitor,
  DmaPort,
  DmaTranslator,
} from "../machine/mod.ts";
