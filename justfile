# Convenience recipes; each one calls ./dev, which works without just.

# start the server with the phone app (pass e.g. --demo)
run *args:
    ./dev run {{args}}

# the one file to deploy: target/release/gridsync-server with the phone app inside
release:
    ./dev release

# every check and test
test *args:
    ./dev test {{args}}

fmt:
    cargo fmt --all

lint:
    cargo clippy --workspace --all-targets -- -D warnings

# the standard benchmarks, under 10 minutes once built (--city adds 1,000 phones)
bench *args:
    ./dev bench {{args}}
