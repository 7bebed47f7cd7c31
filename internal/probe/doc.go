// Package probe measures the agent's whole process tree from /proc: how many
// processes and threads it has, how much CPU it used since the last look, its
// resident memory and its storage I/O. It also tells which container the
// current process runs in, whether a process recorded earlier still runs (its
// pid and start time), and which processes are left in a process group. It is
// the only package that imports procfs.
//
// beatwrap samples once per beat interval (typically 1 s to 30 s) for the
// life of the agent, so the sampler is built to cost next to nothing. The
// cost model, per sample:
//
//   - every process in the tree: one read of /proc/<pid>/stat (pid, parent,
//     state, threads, CPU ticks, RSS) and one of /proc/<pid>/io;
//   - its children: one read of /proc/<pid>/task/<pid>/children for a
//     single-threaded process, or a listing of /proc/<pid>/task and one
//     children file per thread for a multi-threaded one (a child belongs to
//     the thread that forked it).
//
// So the cost grows with the size of the tree, not with the number of
// processes on the host. Each file read is open, read until end of file,
// close, into buffers the Sampler keeps, and the files are parsed by hand:
// after the first sample a Sample makes no heap allocation. procfs's own
// parsers (fmt.Fscan) cost about 45 allocations per process, which is why
// they are not on this path; procfs opens the mount point and is the
// reference the parser is tested against.
//
// A kernel built without CONFIG_PROC_CHILDREN has no children files. The
// Sampler notices on its first sample and from then on reads the stat file of
// every process instead (in a container: every process in its pid namespace)
// and follows parent pids from the root.
//
// Processes come and go while the tree is read; one that vanishes mid-read is
// skipped, never an error. Only a root that cannot be read is an error, and
// it wraps ErrNotFound: the agent is gone.
package probe
