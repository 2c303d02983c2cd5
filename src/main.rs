//! The `dbtap` command.

// glibc's malloc spent about a sixth of a replay's instructions in malloc/free (records, bind
// values and request events are allocated and freed per operation, on one thread and freed on
// another); mimalloc's thread-local free lists take a fraction of that.
#[global_allocator]
static GLOBAL: WordAlignedMimalloc = WordAlignedMimalloc;

/// mimalloc, asked for word alignment the cheap way.
///
/// The `mimalloc` crate's allocator passes every request to `mi_malloc_aligned`, and mimalloc
/// takes its fast path there only for a small block that happens to be aligned already; a
/// request whose size is not a power of two (a 40-byte struct aligned to 8) goes through its
/// generic path, often over-allocating. Yet every mimalloc block is word-aligned: its size
/// classes are whole words (`QNULL(sz)`: `sz * sizeof(uintptr_t)`, mimalloc's `init.c`) and the
/// first block of a page is aligned to 16 bytes at least (`MI_PAGE_MIN_START_BLOCK_ALIGN`),
/// so plain `mi_malloc` meets any alignment up to the word. Larger alignments still go to the
/// aligned functions. Measured (`benches/instructions.sh`): 1.6–2.9% fewer instructions per
/// record.
struct WordAlignedMimalloc;

/// The alignment every mimalloc block has.
const WORD: usize = std::mem::size_of::<usize>();

// SAFETY (all four methods): the pointers come from, and go back to, mimalloc; a block from the
// unaligned functions is used only where the layout asks for at most `WORD`, which every
// mimalloc block meets (see the type's comment); `mi_free` takes blocks from either family.
unsafe impl std::alloc::GlobalAlloc for WordAlignedMimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        if layout.align() <= WORD {
            libmimalloc_sys::mi_malloc(layout.size()).cast()
        } else {
            libmimalloc_sys::mi_malloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        if layout.align() <= WORD {
            libmimalloc_sys::mi_zalloc(layout.size()).cast()
        } else {
            libmimalloc_sys::mi_zalloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: std::alloc::Layout) {
        libmimalloc_sys::mi_free(ptr.cast());
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= WORD {
            libmimalloc_sys::mi_realloc(ptr.cast(), new_size).cast()
        } else {
            libmimalloc_sys::mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast()
        }
    }
}

fn main() {
    no_huge_pages();
    let code = match dbtap::cli::main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("dbtap: {e:#}");
            1
        }
    };
    leave(code)
}

/// Keeps the process on ordinary 4 KiB pages: no transparent huge pages.
///
/// With huge pages, the first touch of each 2 MiB of fresh heap makes the kernel zero all of it
/// (`clear_page_erms` under `do_huge_pmd_anonymous_page`), whether 4 KiB of it or all is used.
/// A replay's heap is small and its pages are touched once, in a stream: read blocks, record
/// buffers, pending requests. mimalloc asked for huge pages on all of it (`MADV_HUGEPAGE` on its
/// regions; the `no_thp` feature leaves that out), so a 200 MB sysbench replay zeroed ~51 MB of
/// pages where it touches ~19 MB, and that zeroing was a fifth to a third of the replay's CPU
/// time in profiles (`perf record -e cpu-clock`), the part that varied most from run to run.
/// `PR_SET_THP_DISABLE` covers the kernels whose THP mode is `always` too, where no `madvise`
/// is needed. A sensor that runs for months also avoids the memory that half-used huge pages
/// pin, for which database vendors advise turning THP off. If the call fails (an old kernel),
/// the run goes on with the system's setting.
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: `prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)` takes plain integers and changes only this
    // process's paging policy; its result is ignored on purpose (see above).
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// Ends the process once its work is written, without the C library's exit-time clean-up.
///
/// By now every output has been written and closed: the records, alerts, baseline and summary
/// files had their writers dropped when `cli::main` returned, and standard error is unbuffered;
/// only standard output's buffer is left, flushed here. What `exit` would do next is run the
/// allocator's clean-up (`mi_process_done`, mimalloc's `init.c`): linked statically, mimalloc
/// collects every heap and hands each region back to the system, one `madvise` call per region,
/// for memory the kernel takes back anyway when the process ends. After a 200 MB replay that was
/// 2-5 ms between the summary and the end of the process (0.5 ms without it), a few percent of
/// the whole replay.
fn leave(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` ends the process at once. Every thread that writes (the pipeline's, the
    // progress display) has been joined, and no output is pending (see above); the one that
    // compiles the default rules writes nothing, and is still running only when the run stopped
    // on an error before it needed them.
    unsafe { libc::_exit(code) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::{GlobalAlloc, Layout};

    /// Every size from 1 byte to past mimalloc's small and medium classes, at every alignment
    /// from 1 to 4 KiB: the block is aligned as asked, holds what is written to it, keeps it
    /// through growing and shrinking, and zeroed blocks are zero.
    #[test]
    fn blocks_are_aligned_as_asked_and_keep_their_contents() {
        let sizes = (1..=64)
            .chain((72..=1100).step_by(8))
            .chain([1023, 1025, 4095, 4097, 40_000, 70_001, 600_000, 2_100_000]);
        for size in sizes {
            for align in [1, 2, 4, 8, 16, 32, 64, 4096] {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: a non-zero size; each block is freed once, with its layout.
                unsafe {
                    let p = GLOBAL.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "alloc {size} aligned {align}");
                    std::ptr::write_bytes(p, 0xa5, size);
                    let z = GLOBAL.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0, "zalloc {size} aligned {align}");
                    assert!(std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0));
                    GLOBAL.dealloc(z, layout);
                    let grown = size * 3 + 5;
                    let q = GLOBAL.realloc(p, layout, grown);
                    assert_eq!(
                        q as usize % align,
                        0,
                        "realloc {size}→{grown} aligned {align}"
                    );
                    assert!(std::slice::from_raw_parts(q, size)
                        .iter()
                        .all(|&b| b == 0xa5));
                    let shrunk = size.div_ceil(2);
                    let r =
                        GLOBAL.realloc(q, Layout::from_size_align(grown, align).unwrap(), shrunk);
                    assert_eq!(
                        r as usize % align,
                        0,
                        "realloc {grown}→{shrunk} aligned {align}"
                    );
                    assert!(std::slice::from_raw_parts(r, shrunk)
                        .iter()
                        .all(|&b| b == 0xa5));
                    GLOBAL.dealloc(r, Layout::from_size_align(shrunk, align).unwrap());
                }
            }
        }
    }
}
