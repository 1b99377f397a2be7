package journal

// DisableSyncForBenchmark turns fsync off in o. Only benchmarks use it, to
// show what the fsync costs; it is not part of the package's API.
func DisableSyncForBenchmark(o *Options) { o.noSync = true }
