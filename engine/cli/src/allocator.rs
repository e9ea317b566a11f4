//! Tuning of mimalloc, the allocator of the `roomgraph` binary and the benchmark harness (feature
//! `mimalloc`; the library itself leaves the allocator to its host).

/// mimalloc v3's number for the `purge_delay` option (`mi_option_e` in its `mimalloc.h`), which
/// libmimalloc-sys does not name. The test below checks it against the option's documented default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Tells mimalloc never to return freed pages to the OS (`purge_delay` = -1; the default returns them
/// a second after they are freed).
///
/// Ingest frees each batch's buffers (lines, write buffers, parsed events) and allocates as much again
/// for the next batch a few hundred milliseconds later; with purging, the pages were handed back and
/// faulted in anew each time. On the 1 M-event trace this cut page faults by about 18 % and CPU time
/// by about 5 %, for 30–50 MB more peak RSS (docs/BENCHMARKS.md § ingest). The cost: the process
/// keeps its peak heap until it exits, which for a batch tool or a server sized for its peak is what
/// it will use again.
pub fn keep_freed_pages() {
    // SAFETY: `mi_option_set` stores one integer in mimalloc's option table and may be called at any
    // time; -1 is a documented value of `purge_delay` ("no purging at all").
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Option 15 is `purge_delay`: its default is 1000 (ms) in mimalloc v3, which no neighbouring
    /// option has, and setting it through [`keep_freed_pages`] reads back as -1.
    #[test]
    fn option_number_is_purge_delay() {
        // SAFETY: `mi_option_get` reads one integer from mimalloc's option table.
        let default = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(default, 1000);
        }
        keep_freed_pages();
        // SAFETY: as above.
        assert_eq!(
            unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) },
            -1
        );
    }
}
