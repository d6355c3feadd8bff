//! `dft-brokers`: starts Apache Kafka and nats-server on free loopback ports for the demo and
//! for manual use, prints `KAFKA_BOOTSTRAP=…` and `NATS_URL=…` (and writes them to
//! `--env-file` when given), and keeps them running until it is stopped (Ctrl-C, SIGTERM, or
//! its standard input closing when started with `--until-stdin-closes`). The brokers die with it.

use std::io::Read;

fn main() {
    let mut env_file = None;
    let mut until_stdin = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--env-file" => env_file = args.next(),
            "--until-stdin-closes" => until_stdin = true,
            "-h" | "--help" => {
                println!(
                    "usage: dft-brokers [--env-file FILE] [--until-stdin-closes]\n\
                     Starts Apache Kafka and nats-server on free loopback ports (or takes \
                     KAFKA_BOOTSTRAP / NATS_URL), prints their addresses and runs until stopped."
                );
                return;
            }
            other => {
                eprintln!("dft-brokers: unknown argument '{other}' (try --help)");
                std::process::exit(2);
            }
        }
    }
    let b = dft_test_support::brokers();
    let lines = format!(
        "KAFKA_BOOTSTRAP={}\nNATS_URL={}\nBROKERS_DIR={}\n",
        b.kafka,
        b.nats,
        dft_test_support::run_dir().display()
    );
    if let Some(path) = env_file {
        let tmp = format!("{path}.tmp");
        std::fs::write(&tmp, &lines).expect("write the env file");
        std::fs::rename(&tmp, &path).expect("write the env file");
    }
    print!("{lines}");
    if until_stdin {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    } else {
        // SAFETY: pause() only waits for a signal; the default actions of SIGINT and SIGTERM
        // end the process, and the brokers with it.
        loop {
            unsafe { libc::pause() };
        }
    }
}
