use super::*;

// The fetcher on its own: single flight and the retry.

struct SlowSource {
    inner: MemSource,
    calls: AtomicUsize,
    release: Mutex<mpsc::Receiver<()>>,
}

impl ChunkSource for SlowSource {
    fn fetch(&self, chunk: &FileChunk) -> Result<Vec<u8>, SourceError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let _ = self.release.lock().unwrap().recv();
        self.inner.fetch(chunk)
    }
}

#[test]
fn concurrent_reads_of_a_missing_chunk_fetch_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(ChunkCache::open(dir.path(), 1 << 20).unwrap());
    let data = bytes_of("flight", 5000);
    let chunk = chunk_of(&data);
    let mut inner = MemSource::default();
    inner.chunks.insert(chunk.hash, data.clone());
    let (tx, rx) = mpsc::channel();
    let source = Arc::new(SlowSource {
        inner,
        calls: AtomicUsize::new(0),
        release: Mutex::new(rx),
    });
    let fetcher = Arc::new(fetch::Fetcher::new(source.clone(), cache, 0));
    let n = 6;
    let ready = Arc::new(Barrier::new(n + 1));
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let (f, r) = (fetcher.clone(), ready.clone());
            std::thread::spawn(move || {
                r.wait();
                f.get(&chunk, false)
            })
        })
        .collect();
    ready.wait();
    // The first caller is inside the source; give the others time to pile
    // up behind it (more overlap, never a false pass: a second source call
    // at any time fails the test).
    while source.calls.load(Ordering::SeqCst) == 0 {
        std::thread::yield_now();
    }
    std::thread::sleep(Duration::from_millis(100));
    tx.send(()).unwrap();
    drop(tx);
    for t in threads {
        assert_eq!(&*t.join().unwrap().unwrap(), &data[..]);
    }
    assert_eq!(source.calls.load(Ordering::SeqCst), 1);
    assert_eq!(fetcher.counters.fetched_chunks.load(Ordering::SeqCst), 1);
}

#[test]
fn a_wrong_answer_is_retried_once() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(ChunkCache::open(dir.path(), 1 << 20).unwrap());
    let data = bytes_of("retry", 3000);
    let chunk = chunk_of(&data);
    let mut s = MemSource::default();
    s.chunks.insert(chunk.hash, data.clone());
    s.corrupt_once.lock().unwrap().insert(chunk.hash);
    let source = Arc::new(s);
    let fetcher = fetch::Fetcher::new(source.clone(), cache.clone(), 1 << 20);
    assert_eq!(&*fetcher.get(&chunk, true).unwrap(), &data[..]);
    assert_eq!(fetcher.counters.refused.load(Ordering::SeqCst), 1);
    assert_eq!(source.fetched().len(), 2);
    assert!(cache.contains(&chunk.hash));
    // Served from memory now.
    fetcher.get(&chunk, true).unwrap();
    assert_eq!(fetcher.counters.memory_hits.load(Ordering::SeqCst), 1);
    // Two wrong answers: refused.
    let other = bytes_of("other", 100);
    let oc = chunk_of(&other);
    let mut s = MemSource::default();
    s.chunks.insert(oc.hash, other);
    s.corrupt.lock().unwrap().insert(oc.hash);
    let fetcher = fetch::Fetcher::new(Arc::new(s), cache.clone(), 1 << 20);
    assert_eq!(fetcher.get(&oc, true).unwrap_err(), fetch::Failure::Refused);
    assert!(!cache.contains(&oc.hash));
}
