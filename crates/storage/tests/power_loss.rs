//! Crash tests of the partition log on `SimFs`: power loss (strict and torn), process
//! crashes, a crash at every file-system operation of a workload, a failed fsync at every
//! fsync of a workload, and a full disk. The invariant everywhere: every acknowledged offset
//! survives with its exact bytes, offsets stay dense, and the log takes appends afterwards.
//!
//! "Acknowledged" follows the broker's group commit: `sync_target()`, fsync of its files
//! (possibly with appends and rolls in between, as happens outside the partition lock),
//! then `mark_synced(end)`; the offsets below `recovery_point()` are then acknowledged
//! (as after `flush()`). With `Ack::BeforeFsync` (a relaxed flush policy) offsets are
//! acknowledged as soon as `append` returns, and the same check must be able to fail.
//!
//! Every run is deterministic: a failure message names the seed (and crash point) to replay.

use std::path::Path;
use std::sync::Arc;

use weir_storage::batch::validate_record_set;
use weir_storage::testkit::record_batch;
use weir_storage::{BoundedFs, Fs, Log, LogConfig, SimFs, SimRng, StorageError, SyncTarget};

const DATA_DIR: &str = "/data";
const DIR: &str = "/data/topic-0";

/// A SimFs holding an empty, durable data directory (the broker creates it at startup).
fn fresh_fs(seed: u64) -> SimFs {
    let fs = SimFs::new(seed);
    fs.create_dir_all(Path::new(DATA_DIR)).unwrap();
    fs.sync_dir(Path::new("/")).unwrap();
    fs
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 2_000,
        segment_ms: 30_000,
        index_interval_bytes: 250,
        ..LogConfig::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ack {
    AfterFsync,
    BeforeFsync,
}

/// A batch as the log stored it (offsets and epoch stamped).
struct Batch {
    base: i64,
    last: i64,
    epoch: i32,
    bytes: Vec<u8>,
}

/// The workload driver and its model of what must survive.
struct Sim {
    fs: SimFs,
    rng: SimRng,
    ack: Ack,
    log: Option<Log>,
    /// A group-commit fsync that has been started (target taken) but not finished.
    in_flight: Option<SyncTarget>,
    /// Every batch appended, in offset order, including one whose append returned an error
    /// (it may or may not have reached the file). Cut back to the log end at each recovery.
    written: Vec<Batch>,
    /// Offsets below this were acknowledged.
    acked_end: i64,
    now_ms: i64,
    epoch: i32,
    /// Names the run in failure messages.
    label: String,
    /// Run the log on a `BoundedFs` keeping this many files open.
    open_files: Option<usize>,
}

fn assert_same(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let first_diff = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{what}: got {} bytes, want {} bytes, first difference at {first_diff:?}",
            got.len(),
            want.len()
        );
    }
}

impl Sim {
    fn new(fs: SimFs, seed: u64, ack: Ack, label: String) -> Sim {
        Sim {
            fs,
            rng: SimRng::new(seed),
            ack,
            log: None,
            in_flight: None,
            written: Vec::new(),
            acked_end: 0,
            now_ms: 1_000_000,
            epoch: 0,
            label,
            open_files: None,
        }
    }

    fn with_open_files(mut self, open_files: Option<usize>) -> Sim {
        self.open_files = open_files;
        self
    }

    fn log(&mut self) -> &mut Log {
        self.log.as_mut().expect("log is open")
    }

    fn written_end(&self) -> i64 {
        self.written.last().map_or(0, |b| b.last + 1)
    }

    fn open(&mut self, clean: bool) -> Result<(), StorageError> {
        self.in_flight = None;
        self.log = None;
        let fs: Arc<dyn Fs> = match self.open_files {
            Some(n) => Arc::new(BoundedFs::new(Arc::new(self.fs.clone()), n)),
            None => Arc::new(self.fs.clone()),
        };
        let (log, _report) = Log::open_in(fs, Path::new(DIR), config(), clean)?;
        self.log = Some(log);
        Ok(())
    }

    fn append(&mut self) -> Result<(), StorageError> {
        let records = 1 + self.rng.below(4) as usize;
        let value_len = self.rng.below(300) as usize;
        self.now_ms += self.rng.below(2_000) as i64;
        if self.rng.chance(1, 25) {
            self.epoch += 1;
        }
        let (epoch, now_ms) = (self.epoch, self.now_ms);
        let mut b = record_batch(records, value_len, now_ms);
        let base = self.log().log_end_offset();
        let result = self.log().append(&mut b, epoch, now_ms);
        // After a failed write the stamped bytes may still have reached the file: the model
        // keeps the batch as possibly written (verify cuts it if it is not there).
        if !matches!(result, Err(StorageError::Offline(_))) {
            self.written.push(Batch {
                base,
                last: base + records as i64 - 1,
                epoch,
                bytes: b,
            });
        }
        let info = result?;
        assert_eq!(
            (info.base_offset, info.last_offset),
            (base, base + records as i64 - 1)
        );
        if self.ack == Ack::BeforeFsync {
            self.acked_end = info.last_offset + 1;
        }
        Ok(())
    }

    /// Finish the in-flight group commit (or run one now), as the broker's flusher does.
    fn complete_sync(&mut self) -> Result<(), StorageError> {
        let target = match self.in_flight.take() {
            Some(t) => t,
            None => self.log().sync_target(),
        };
        let fsynced = target.files.iter().try_for_each(|f| f.sync_data());
        let log = self.log.as_mut().expect("log is open");
        match fsynced {
            Ok(()) => {
                // As the broker must: acknowledge up to the recovery point the log grants
                // (nothing more once it is offline, maybe more after a roll).
                log.mark_synced(target.end_offset);
                if self.ack == Ack::AfterFsync {
                    self.acked_end = self.acked_end.max(log.recovery_point());
                }
                Ok(())
            }
            Err(source) => {
                // The broker reports the failure once it holds the partition lock again;
                // appends (and rolls, fsyncing the same file) may get the lock first.
                for _ in 0..self.rng.below(4) {
                    if self.append().is_err() {
                        break;
                    }
                }
                let log = self.log.as_mut().expect("log is open");
                log.mark_failed();
                Err(StorageError::Io {
                    context: "group commit fsync".into(),
                    source,
                })
            }
        }
    }

    /// One random step of the workload.
    fn step(&mut self) -> Result<(), StorageError> {
        match self.rng.below(40) {
            0..=21 => self.append(),
            22..=25 => {
                if self.in_flight.is_none() {
                    self.in_flight = Some(self.log().sync_target());
                    Ok(())
                } else {
                    self.complete_sync()
                }
            }
            26..=31 => self.complete_sync(),
            32..=34 => {
                // The end, unless a group commit is in flight: then what that one grants.
                self.log().flush()?;
                if self.ack == Ack::AfterFsync {
                    self.acked_end = self.acked_end.max(self.log().recovery_point());
                }
                Ok(())
            }
            35 => {
                // Clean shutdown, possibly while a group commit is in flight (its answer
                // never comes), then a clean open.
                self.in_flight = None;
                let log = self.log.take().expect("log is open");
                log.close()?;
                self.open(true)?;
                assert!(self.verify(), "{}: clean reopen lost data", self.label);
                Ok(())
            }
            _ => {
                // A quiet spell: the next append rolls the segment by age.
                self.now_ms += 40_000;
                self.append()
            }
        }
    }

    fn run(&mut self, steps: usize) -> Result<(), StorageError> {
        for _ in 0..steps {
            self.step()?;
        }
        Ok(())
    }

    /// Power loss (strict or torn) or a process crash, chosen by `mode` % 3.
    fn crash(&mut self, mode: u64) {
        self.in_flight = None;
        self.log = None;
        self.fs.heal();
        match mode % 3 {
            0 => self.fs.crash(),
            1 => self.fs.crash_torn(),
            _ => self.fs.restart(),
        }
    }

    /// Unclean open after a crash; sometimes the machine crashes again during recovery.
    fn recover(&mut self) {
        for attempt in 0.. {
            assert!(attempt < 100, "{}: recovery never finished", self.label);
            if self.rng.chance(1, 3) {
                self.fs.crash_at_op(self.fs.op_count() + self.rng.below(25));
            }
            match self.open(false) {
                Ok(()) => {
                    self.fs.heal();
                    return;
                }
                Err(_) if self.fs.is_down() => {
                    let mode = self.rng.below(3);
                    self.crash(mode);
                }
                Err(e) => panic!("{}: recovery failed: {e}", self.label),
            }
        }
    }

    /// Check the open log against the model; cut the model back to the log end. Returns
    /// whether every acknowledged offset survived (everything else is asserted).
    fn verify(&mut self) -> bool {
        let label = self.label.clone();
        let log = self.log.as_ref().expect("log is open");
        let end = log.log_end_offset();
        assert_eq!(log.log_start_offset(), 0, "{label}");
        assert_eq!(
            log.recovery_point(),
            end,
            "{label}: recovered log is durable"
        );
        let intact = end >= self.acked_end;

        // Offsets dense from 0 to the end, whole batches only.
        let all = log.read(0, usize::MAX, i64::MAX).unwrap();
        let mut next = 0;
        if !all.is_empty() {
            let headers = validate_record_set(&all, usize::MAX)
                .unwrap_or_else(|e| panic!("{label}: the log serves a bad batch: {e}"));
            for h in headers {
                assert_eq!(h.base_offset, next, "{label}: offsets not dense");
                next = h.last_offset() + 1;
            }
        }
        assert_eq!(next, end, "{label}: read ends at the log end");

        // What survived is exactly a prefix of what was written, byte for byte.
        let keep = self.written.iter().take_while(|b| b.last < end).count();
        assert_eq!(
            self.written
                .get(keep)
                .map_or(self.written_end(), |b| b.base),
            end,
            "{label}: log end {end} is not a batch boundary of what was written"
        );
        self.written.truncate(keep);
        let want: Vec<u8> = self.written.iter().flat_map(|b| b.bytes.clone()).collect();
        assert_same(&all, &want, &format!("{label}: surviving bytes"));

        // Leader epochs: the first offset of each epoch among the surviving batches.
        let mut epochs: Vec<(i32, i64)> = Vec::new();
        for b in &self.written {
            if epochs.last().is_none_or(|&(e, _)| b.epoch > e) {
                epochs.push((b.epoch, b.base));
            }
        }
        assert_eq!(log.leader_epochs(), &epochs[..], "{label}: leader epochs");

        // A relaxed ack may have been lost; the model continues from what is there.
        self.acked_end = self.acked_end.min(end);
        intact
    }

    /// The log accepts an append at its end and acknowledges it after a flush.
    fn append_after_recovery(&mut self) {
        let end = self.log().log_end_offset();
        self.append()
            .unwrap_or_else(|e| panic!("{}: append after recovery: {e}", self.label));
        assert_eq!(self.written.last().unwrap().base, end);
        self.log().flush().unwrap();
        let log = self.log();
        assert_eq!(log.recovery_point(), log.log_end_offset());
        self.acked_end = log.recovery_point();
    }
}

/// Random workloads with a power loss or process crash at a random file-system operation,
/// then an unclean open. Returns the number of crashes that lost acknowledged offsets.
fn random_crashes(seed: u64, ack: Ack) -> u32 {
    random_crashes_with(seed, ack, None)
}

fn random_crashes_with(seed: u64, ack: Ack, open_files: Option<usize>) -> u32 {
    let fs = fresh_fs(seed);
    let mut sim =
        Sim::new(fs.clone(), seed, ack, format!("seed {seed} {ack:?}")).with_open_files(open_files);
    sim.open(false).unwrap();
    let mut lost = 0;
    for round in 0..6 {
        sim.label = format!("seed {seed} {ack:?} round {round}");
        fs.crash_at_op(fs.op_count() + sim.rng.below(120));
        if let Err(e) = sim.run(60) {
            assert!(fs.is_down(), "{}: unexpected error {e}", sim.label);
        }
        let mode = sim.rng.below(3);
        sim.crash(mode);
        sim.recover();
        lost += !sim.verify() as u32;
        sim.append_after_recovery();
    }
    lost
}

#[test]
fn power_loss_at_random_points_loses_no_acknowledged_offset() {
    for seed in 0..150 {
        assert_eq!(
            random_crashes(seed, Ack::AfterFsync),
            0,
            "seed {seed}: acknowledged offsets lost"
        );
    }
}

/// The same check with offsets acknowledged before their fsync (a relaxed flush policy):
/// power loss does lose acknowledged offsets, so the check above can fail.
#[test]
fn acknowledging_before_fsync_loses_acknowledged_offsets_in_a_power_loss() {
    let lost: u32 = (0..40)
        .map(|seed| random_crashes(seed, Ack::BeforeFsync))
        .sum();
    assert!(
        lost > 0,
        "no crash lost an offset acknowledged before fsync"
    );
}

/// Crash (strict power loss, torn power loss, process crash in turn) at each file-system
/// operation of a fixed workload: during appends, group commits, rolls (index writes,
/// segment creation, directory fsync, checkpoint), leader-epoch checkpoints, close, clean
/// and unclean opens. After recovery the log must hold every acknowledged offset, then
/// survive another workload and a power loss.
#[test]
fn a_crash_at_every_operation_of_a_workload_loses_no_acknowledged_offset() {
    crash_at_every_operation(&[11, 12], None);
}

/// The same with segments closed and reopened all the time (`BoundedFs` keeping 2 files
/// open): a closed file's fsync, and the first fsync of a reopened one, must keep the
/// promise too.
#[test]
fn a_crash_at_every_operation_with_two_open_files_loses_no_acknowledged_offset() {
    crash_at_every_operation(&[13], Some(2));
}

#[test]
fn power_loss_with_two_open_files_loses_no_acknowledged_offset() {
    for seed in 0..80 {
        assert_eq!(
            random_crashes_with(seed, Ack::AfterFsync, Some(2)),
            0,
            "seed {seed}: acknowledged offsets lost"
        );
    }
}

fn crash_at_every_operation(seeds: &[u64], open_files: Option<usize>) {
    for &seed in seeds {
        let steps = 70;
        let fs = fresh_fs(0);
        let mut sim = Sim::new(fs.clone(), seed, Ack::AfterFsync, format!("seed {seed}"))
            .with_open_files(open_files);
        sim.open(false).unwrap();
        sim.run(steps).unwrap();
        let (first_op, total_ops) = (fresh_fs(0).op_count(), fs.op_count());
        assert!(total_ops > 150, "workload too small: {total_ops} ops");
        assert!(sim.log().segment_count() > 3, "workload rolls segments");

        for k in first_op..total_ops {
            let fs = fresh_fs(k);
            let label = format!("seed {seed} crash at op {k}");
            let mut sim =
                Sim::new(fs.clone(), seed, Ack::AfterFsync, label).with_open_files(open_files);
            fs.crash_at_op(k);
            let result = sim.open(false).and_then(|()| sim.run(steps));
            assert!(result.is_err() && fs.is_down(), "{}: no crash", sim.label);
            sim.crash(k);
            sim.recover();
            assert!(sim.verify(), "{}: acknowledged offsets lost", sim.label);
            sim.append_after_recovery();

            // What recovery did must itself survive the next power loss.
            sim.run(15)
                .unwrap_or_else(|e| panic!("{}: after recovery: {e}", sim.label));
            sim.crash(k / 3 % 2);
            sim.recover();
            assert!(sim.verify(), "{}: lost after a second crash", sim.label);
        }
    }
}

/// An fsync fails at each fsync point of a fixed workload (group commit, flush, roll, index
/// and checkpoint writes, close, open). The failure must surface as an error and make the
/// log refuse writes; acknowledged offsets stay readable, and survive a reopen (after a
/// process restart or a power loss) and later power losses.
#[test]
fn a_failed_fsync_anywhere_makes_the_log_refuse_writes_and_loses_nothing_acknowledged() {
    for seed in [21, 22] {
        let steps = 70;
        let fs = fresh_fs(0);
        let mut sim = Sim::new(fs.clone(), seed, Ack::AfterFsync, format!("seed {seed}"));
        sim.open(false).unwrap();
        sim.run(steps).unwrap();
        let (first_fsync, total_fsyncs) = (fresh_fs(0).fsync_count(), fs.fsync_count());
        assert!(
            total_fsyncs > 40,
            "workload too small: {total_fsyncs} fsyncs"
        );

        for n in first_fsync..total_fsyncs {
            let fs = fresh_fs(n);
            let label = format!("seed {seed} fsync {n} fails");
            let mut sim = Sim::new(fs.clone(), seed, Ack::AfterFsync, label);
            fs.fail_fsync_at(n);
            let result = sim.open(false).and_then(|()| sim.run(steps));
            assert!(
                result.is_err(),
                "{}: the failed fsync went unnoticed",
                sim.label
            );
            let failed = fs.failed_fsyncs();
            assert_eq!(failed.len(), 1, "{}", sim.label);
            sim.label = format!("{} (fsync of {})", sim.label, failed[0].display());
            if sim.log.is_some() && sim.in_flight.is_some() {
                // The broker's flusher finishes the fsync it had started: it "succeeds".
                let _ = sim.complete_sync();
            }
            let acked = sim.acked_end;
            if let Some(log) = sim.log.as_mut() {
                assert!(log.is_offline(), "{}: still online", sim.label);
                let refused = log.append(&mut record_batch(1, 1, 0), 0, 0);
                assert!(
                    matches!(refused, Err(StorageError::Offline(_))),
                    "{}",
                    sim.label
                );
                assert!(matches!(log.flush(), Err(StorageError::Offline(_))));
                // Acknowledged offsets stay readable while offline.
                let read = log.read(0, usize::MAX, acked).unwrap();
                let want: Vec<u8> = sim
                    .written
                    .iter()
                    .filter(|b| b.last < acked)
                    .flat_map(|b| b.bytes.clone())
                    .collect();
                assert_same(&read, &want, &sim.label);
            }
            // Reopen after a process restart or after a power loss.
            sim.crash(if n % 2 == 0 { 2 } else { 1 });
            sim.open(false)
                .unwrap_or_else(|e| panic!("{}: reopen: {e}", sim.label));
            assert!(sim.verify(), "{}: acknowledged offsets lost", sim.label);
            sim.append_after_recovery();
            sim.run(n as usize % 7 * 3)
                .unwrap_or_else(|e| panic!("{}: after reopen: {e}", sim.label));
            sim.crash(n / 2 % 2);
            sim.recover();
            assert!(sim.verify(), "{}: lost after a later crash", sim.label);
        }
    }
}

/// The scenario of the issue, step by step: a group-commit fsync fails.
#[test]
fn failed_group_commit_fsync_takes_the_log_offline_until_reopened() {
    let fs = fresh_fs(1);
    let mut sim = Sim::new(fs.clone(), 1, Ack::AfterFsync, "failed fsync".into());
    sim.open(false).unwrap();
    for _ in 0..5 {
        sim.append().unwrap();
    }
    sim.complete_sync().unwrap();
    let acked = sim.acked_end;
    assert_eq!(acked, sim.written_end());
    for _ in 0..3 {
        sim.append().unwrap();
    }
    // What rolls made durable meanwhile, short of the last append.
    let durable = sim.log().recovery_point();
    assert!(acked <= durable && durable < sim.written_end());
    fs.fail_next_fsync();
    assert!(sim.complete_sync().is_err());
    assert_eq!(sim.acked_end, acked, "nothing more acknowledged");
    let log = sim.log();
    assert!(log.is_offline());
    let err = log.append(&mut record_batch(1, 1, 0), 0, 0).unwrap_err();
    assert!(matches!(err, StorageError::Offline(_)), "{err}");
    assert!(err.to_string().contains("offline"), "{err}");
    assert!(matches!(log.flush(), Err(StorageError::Offline(_))));
    assert!(log.read(0, usize::MAX, acked).is_ok(), "reads still work");
    // A later successful fsync proves nothing: the log stays offline.
    let target = log.sync_target();
    target.files.iter().for_each(|f| f.sync_data().unwrap());
    log.mark_synced(target.end_offset);
    assert!(log.is_offline());
    let log = sim.log.take().unwrap();
    assert!(matches!(log.close(), Err(StorageError::Offline(_))));

    // The process restarts (the page cache still holds the unsynced appends).
    fs.restart();
    sim.open(false).unwrap();
    assert!(sim.verify());
    assert_eq!(
        sim.log().log_end_offset(),
        durable,
        "appends past the failed fsync are not trusted"
    );
    for _ in 0..4 {
        sim.append_after_recovery();
    }
    fs.crash();
    sim.open(false).unwrap();
    assert!(
        sim.verify(),
        "acknowledged after the reopen, lost at power loss"
    );
}

#[test]
fn a_full_disk_refuses_appends_then_resumes_and_loses_nothing_acknowledged() {
    let fs = fresh_fs(2);
    let mut sim = Sim::new(fs.clone(), 2, Ack::AfterFsync, "disk full".into());
    sim.open(false).unwrap();
    sim.run(30).unwrap();
    sim.log().flush().unwrap();
    sim.acked_end = sim.log().log_end_offset();
    fs.set_disk_full(true);
    for _ in 0..3 {
        let err = sim.append().unwrap_err();
        assert!(
            matches!(&err, StorageError::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull),
            "{err}"
        );
        // Disk full is not a failed fsync: the log stays online, nothing was written.
        assert!(!sim.log().is_offline());
        assert_eq!(sim.log().log_end_offset(), sim.acked_end);
    }
    // Space comes back: writes resume without a reopen, and are durable once synced.
    fs.set_disk_full(false);
    sim.run(5).unwrap();
    sim.log().flush().unwrap();
    sim.acked_end = sim.log().log_end_offset();
    fs.crash();
    fs.restart();
    sim.open(false).unwrap();
    assert!(sim.verify());
    sim.append_after_recovery();
}

/// The broker fsyncs `SyncTarget::files` on a blocking thread with `f.sync_data()`, without
/// naming the `StorageFile` trait: that must keep compiling.
#[test]
fn sync_target_files_can_be_fsynced_on_another_thread() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut log, _) = Log::open(tmp.path(), config(), false).unwrap();
    log.append(&mut record_batch(2, 10, 0), 0, 0).unwrap();
    let target = log.sync_target();
    let end_offset = target.end_offset;
    let files = target.files;
    let fsynced = std::thread::spawn(move || {
        for f in &files {
            f.sync_data()?;
        }
        Ok::<(), std::io::Error>(())
    })
    .join()
    .unwrap();
    fsynced.unwrap();
    log.mark_synced(end_offset);
    assert_eq!(log.recovery_point(), 2);
}

#[test]
fn log_and_its_handles_can_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Log>();
    send_sync::<SyncTarget>();
    send_sync::<SimFs>();
}
