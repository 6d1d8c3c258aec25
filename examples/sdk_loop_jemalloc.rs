//! `examples/sdk_loop.rs` with the global allocator `fleet-audit` itself uses (jemalloc), so that
//! `scripts/bench.sh` can show the bare SDK loop both as a user would build it (the system allocator)
//! and like for like with `fleet-audit run`. Same flags and output as `sdk_loop`.

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[path = "sdk_loop.rs"]
mod sdk_loop;

fn main() -> anyhow::Result<()> {
    sdk_loop::main()
}
