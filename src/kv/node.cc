#include "kv/node.h"

#include <utility>
// utility first: Boost 1.74's asio needs it before its headers.
#include <fmt/format.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <nlohmann/json.hpp>

#include <malloc.h>
#include <algorithm>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include "consensus/raft/raft.h"
#include "consensus/raft/wal_storage.h"
#include "kv/state_machine.h"
#include "kv/transport.h"
#include "runtime/http.h"

namespace dtx::kv {
namespace {

namespace asio = boost::asio;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kKvPrefix = "/v1/kv/";
constexpr std::string_view kCasPrefix = "/v1/cas/";
constexpr const char* kForwardedHeader = "x-dtxkv-forwarded";
constexpr int kMaxReadyRounds = 64;
constexpr size_t kMaxMessageBytes = size_t{1} << 30;

Result<std::pair<std::string, uint16_t>> ParseHostPort(std::string_view s, std::string_view what) {
  const size_t colon = s.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return InvalidArgument(fmt::format("{} '{}' is not HOST:PORT", what, s));
  }
  unsigned port = 0;
  std::string_view p = s.substr(colon + 1);
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
  if (ec != std::errc() || end != p.data() + p.size() || port == 0 || port > 65535) {
    return InvalidArgument(fmt::format("{} '{}' has no valid port (1..65535)", what, s));
  }
  return std::make_pair(std::string(s.substr(0, colon)), static_cast<uint16_t>(port));
}

runtime::HttpResponse Reply(int status, json body) {
  runtime::HttpResponse r;
  r.status = status;
  r.body = body.dump();
  return r;
}

runtime::HttpResponse Error(int status, std::string message) {
  return Reply(status, json{{"message", std::move(message)}});
}

// The Storage the core reads: the WalStorage for everything but Snapshot(), which must be the
// image a lagging follower installs. The local snapshot holds only a marker (the state lives in
// its database), so the node builds images from a pinned view of the state, off the io thread;
// until one is ready Snapshot() answers kUnavailable and the core asks again later.
class ServingStorage final : public raft::Storage {
 public:
  ServingStorage(const raft::WalStorage* wal, std::function<Result<raft::Snapshot>()> snapshot)
      : wal_(wal), snapshot_(std::move(snapshot)) {}
  raft::HardState InitialState() const override { return wal_->InitialState(); }
  uint64_t FirstIndex() const override { return wal_->FirstIndex(); }
  uint64_t LastIndex() const override { return wal_->LastIndex(); }
  Result<uint64_t> Term(uint64_t i) const override { return wal_->Term(i); }
  Result<std::vector<raft::Entry>> Entries(uint64_t lo, uint64_t hi,
                                           uint64_t max_bytes) const override {
    return wal_->Entries(lo, hi, max_bytes);
  }
  Result<raft::Snapshot> Snapshot() const override { return snapshot_(); }
  Result<raft::SnapshotMetadata> LatestSnapshotMetadata() const override {
    return wal_->LatestSnapshotMetadata();
  }

 private:
  const raft::WalStorage* wal_;
  std::function<Result<raft::Snapshot>()> snapshot_;
};

// How long a built snapshot image is kept after it was last asked for (it may be large).
constexpr uint64_t kImageKeepTicks = 500;

}  // namespace

Result<Member> ParseMember(std::string_view spec) {
  const size_t c1 = spec.find(',');
  const size_t c2 = c1 == std::string_view::npos ? c1 : spec.find(',', c1 + 1);
  if (c2 == std::string_view::npos || spec.find(',', c2 + 1) != std::string_view::npos) {
    return InvalidArgument(
        fmt::format("member '{}' is not ID,PEER_HOST:PORT,HTTP_HOST:PORT", spec));
  }
  Member m;
  std::string_view id = spec.substr(0, c1);
  auto [end, ec] = std::from_chars(id.data(), id.data() + id.size(), m.id);
  if (ec != std::errc() || end != id.data() + id.size() || m.id == raft::kNoNode) {
    return InvalidArgument(fmt::format("member '{}': the id must be a positive integer", spec));
  }
  auto peer = ParseHostPort(spec.substr(c1 + 1, c2 - c1 - 1), "peer address");
  if (!peer.ok())
    return InvalidArgument(fmt::format("member '{}': {}", spec, peer.status().message()));
  auto http = ParseHostPort(spec.substr(c2 + 1), "HTTP address");
  if (!http.ok())
    return InvalidArgument(fmt::format("member '{}': {}", spec, http.status().message()));
  std::tie(m.peer_host, m.peer_port) = *peer;
  std::tie(m.http_host, m.http_port) = *http;
  return m;
}

Status NodeOptions::Validate() const {
  if (members.empty() || members.size() % 2 == 0 || members.size() > 7) {
    return InvalidArgument(
        fmt::format("a cluster has 1, 3, 5 or 7 members, not {}", members.size()));
  }
  std::set<raft::NodeId> ids;
  std::set<std::pair<std::string, uint16_t>> addresses;
  bool self = false;
  for (const Member& m : members) {
    if (m.id == raft::kNoNode) return InvalidArgument("member id 0 is reserved");
    if (!ids.insert(m.id).second) return InvalidArgument(fmt::format("member id {} repeats", m.id));
    if (!addresses.insert({m.peer_host, m.peer_port}).second ||
        !addresses.insert({m.http_host, m.http_port}).second) {
      return InvalidArgument(fmt::format("member {} reuses an address", m.id));
    }
    self = self || m.id == id;
  }
  if (!self) return InvalidArgument(fmt::format("id {} is not among the members", id));
  if (data_dir.empty()) return InvalidArgument("no data directory given");
  if (tick_ms < 1 || tick_ms > 10'000) return InvalidArgument("tick_ms must be in 1..10000");
  if (heartbeat_ticks < 1 || election_ticks <= heartbeat_ticks || election_ticks > 1000) {
    return InvalidArgument("need 1 <= heartbeat_ticks < election_ticks <= 1000");
  }
  if (request_timeout_ms < 10 || request_timeout_ms > 600'000) {
    return InvalidArgument("request_timeout_ms must be in 10..600000");
  }
  if (snapshot_min_bytes < 1024) return InvalidArgument("snapshot_min_bytes must be >= 1024");
  if (env == nullptr) return InvalidArgument("no Env given");
  return Status::Ok();
}

class Node::Impl {
 public:
  explicit Impl(NodeOptions o) : options_(std::move(o)), tick_timer_(io_) {
    for (const Member& m : options_.members) members_[m.id] = m;
  }

  Status Open() {
    const std::string state_dir = options_.data_dir + "/state";
    auto sm = StateMachine::Open(state_dir);
    if (!sm.ok()) return sm.status();
    sm_ = std::move(*sm);
    raft::WalStorageOptions wo;
    wo.dir = options_.data_dir + "/raft";
    auto storage = raft::WalStorage::Open(options_.env, wo);
    if (!storage.ok()) return storage.status();
    storage_ = std::move(*storage);
    serving_storage_ =
        std::make_unique<ServingStorage>(storage_.get(), [this] { return ServeSnapshot(); });

    // The state is persisted up to at least the local snapshot before the log is compacted;
    // it is behind only after a crash while restoring a leader's snapshot, whose image the
    // snapshot file then holds.
    const raft::SnapshotMetadata meta = storage_->snapshot_metadata();
    if (sm_->applied() < meta.index) {
      auto snap = storage_->Snapshot();
      if (!snap.ok()) return snap.status();
      if (IsLocalSnapshotMarker(snap->data)) {
        return DataLoss(fmt::format(
            "the state in {} is at index {}, behind the Raft snapshot at {} that it must contain "
            "(was the state directory removed or replaced?)",
            state_dir, sm_->applied(), meta.index));
      }
      DTX_RETURN_IF_ERROR(sm_->Restore(snap->data, meta.index));
    }
    if (sm_->applied() > storage_->LastIndex()) {
      return DataLoss(
          fmt::format("the state in {} is at index {}, beyond the last log entry {} (was the raft "
                      "directory removed or replaced?)",
                      state_dir, sm_->applied(), storage_->LastIndex()));
    }

    raft::Config c;
    c.id = options_.id;
    // The core hands out the committed entries after its snapshot again; Apply skips those the
    // state already holds.
    c.applied = meta.index;
    for (const Member& m : options_.members) c.peers.push_back(m.id);
    c.election_tick = options_.election_ticks;
    c.heartbeat_tick = options_.heartbeat_ticks;
    c.leader_parallel_persist = true;
    c.seed = std::random_device{}() ^ (options_.id * 0x9e3779b97f4a7c15ull);
    auto raw = raft::RawNode::Create(c, serving_storage_.get());
    if (!raw.ok()) return raw.status();
    raw_ = std::move(*raw);
    if (const uint64_t index = sm_->applied(); index > 0) {
      auto term = storage_->Term(index);
      auto conf = raw_->ConfStateAt(index);
      if (term.ok() && conf.ok()) ServeFrom(sm_->Pin(), {index, *term, *conf});
    }

    const Member& self = members_.at(options_.id);
    TransportOptions to;
    to.self = options_.id;
    to.listen_host = self.peer_host;
    to.listen_port = self.peer_port;
    // A snapshot travels in one message: frames and queues must hold the whole image.
    to.max_frame_bytes = kMaxMessageBytes;
    to.max_queued_bytes_per_peer = kMaxMessageBytes;
    for (const Member& m : options_.members) {
      if (m.id != options_.id) to.peers.push_back(PeerAddress{m.id, m.peer_host, m.peer_port});
    }
    auto transport =
        Transport::Start(io_, to, [this](raft::Message m) { OnMessage(std::move(m)); });
    if (!transport.ok()) return transport.status();
    transport_ = std::move(*transport);

    runtime::HttpServerOptions ho;
    ho.host = self.http_host;
    ho.port = self.http_port;
    ho.max_body_bytes = 3 * kMaxValueBytes;  // a CAS body escapes its values in JSON
    auto http = runtime::HttpServer::Start(
        io_, ho, [this](runtime::HttpRequest&& req, runtime::Responder respond) {
          Handle(std::move(req), std::move(respond));
        });
    if (!http.ok()) return http.status();
    http_ = std::move(*http);
    forward_client_ = std::make_unique<runtime::HttpClient>(io_);

    ArmTick();
    thread_ = std::thread([this] { io_.run(); });
    return Status::Ok();
  }

  void Stop() {
    std::call_once(stop_once_, [this] {
      if (thread_.joinable()) {
        asio::post(io_, [this] { Shutdown(Status::Ok()); });
        thread_.join();
      }
      // A flush or image build in progress finishes first; what it posts back is dropped.
      worker_.join();
      Finish(Status::Ok());
    });
  }

  Status Wait() {
    std::unique_lock lock(mu_);
    done_cv_.wait(lock, [&] { return done_; });
    return final_status_;
  }

  uint16_t http_port() const { return http_ ? http_->port() : 0; }
  uint16_t peer_port() const { return transport_ ? transport_->port() : 0; }

 private:
  struct Write {
    uint64_t term = 0;
    CommandType type = CommandType::kPut;
    Clock::time_point deadline;
    runtime::Responder respond;
  };
  struct Read {
    std::string key;
    uint64_t index = 0;  // 0 until the ReadState arrives
    Clock::time_point deadline;
    runtime::Responder respond;
  };

  // ---- lifecycle (io thread)

  void Shutdown(Status why) {
    if (stopped_) return;
    stopped_ = true;
    tick_timer_.cancel();
    if (http_) http_->Stop();
    if (transport_) transport_->Stop();
    forward_client_.reset();
    // Proposed writes may still commit through the other members.
    for (auto& [index, w] : writes_) {
      w.respond(Error(504, "the node is stopping; the write's outcome is unknown"));
    }
    writes_.clear();
    for (auto& [ctx, r] : reads_) r.respond(Error(503, "the node is stopping"));
    reads_.clear();
    io_.stop();
    Finish(std::move(why));
  }

  void Finish(Status why) {
    std::lock_guard lock(mu_);
    if (done_) return;
    done_ = true;
    final_status_ = std::move(why);
    done_cv_.notify_all();
  }

  void Fatal(const Status& s) {
    std::fprintf(stderr, "dtxkv node %llu: fatal storage error, stopping: %s\n",
                 static_cast<unsigned long long>(options_.id), s.ToString().c_str());
    Shutdown(s);
  }

  void ArmTick() {
    tick_timer_.expires_after(std::chrono::milliseconds(options_.tick_ms));
    tick_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec || stopped_) return;
      raw_->Tick();
      if (++ticks_ % 5 == 0) {
        ExpireRequests();
        MaybeDropImage();
      }
      ScheduleProcess();
      ArmTick();
    });
  }

  void OnMessage(raft::Message m) {
    if (stopped_) return;
    // A malformed or misaddressed message is the peer's problem: Raft drops it and goes on.
    (void)raw_->Step(m);
    ScheduleProcess();
  }

  // Posting instead of processing at once lets every request that arrived meanwhile join the
  // same Ready: one fsync for all of them (group commit).
  void ScheduleProcess() {
    if (process_scheduled_ || stopped_) return;
    process_scheduled_ = true;
    asio::post(io_, [this] {
      process_scheduled_ = false;
      Process();
    });
  }

  void Process() {
    for (int round = 0; round < kMaxReadyRounds && !stopped_ && !ready_pending_ && raw_->HasReady();
         ++round) {
      raft::Ready rd = raw_->Ready();
      // The leader's appends go out before its own fsync: the followers write in parallel.
      if (!rd.early_messages.empty()) transport_->Send(rd.early_messages);
      // Committed entries this node stored in an earlier Ready need not wait for this one's
      // fsync (committed entries are never rewritten): apply and answer them first.
      size_t stable = 0;
      if (!rd.snapshot) {
        const uint64_t last_stored = storage_->LastIndex();
        while (stable < rd.committed_entries.size() &&
               rd.committed_entries[stable].index <= last_stored) {
          ++stable;
        }
      }
      if (stable > 0) {
        if (Status s = ApplyCommitted(rd, 0, stable); !s.ok()) return Fatal(s);
        if (rd.must_sync) {
          // The answers wait on their connections' strands; letting the loop send them before
          // this thread blocks in the fsync takes a disk write off their latency.
          ready_pending_ = true;
          asio::post(io_, [this, rd = std::move(rd), stable]() mutable {
            ready_pending_ = false;
            if (stopped_ || !FinishReady(rd, stable)) return;
            Process();
          });
          return;
        }
      }
      if (!FinishReady(rd, stable)) return;
    }
    // Nothing more while a Ready waits for its persist: its handler calls Process again.
    if (stopped_ || ready_pending_) return;
    if (raw_->HasReady()) ScheduleProcess();
    MaybeCompact();
  }

  // Applies committed_entries [from, to) of rd, commits them to the state and answers their
  // writers.
  Status ApplyCommitted(const raft::Ready& rd, size_t from, size_t to) {
    std::vector<std::pair<runtime::Responder, runtime::HttpResponse>> replies;
    for (size_t i = from; i < to; ++i) DTX_RETURN_IF_ERROR(Apply(rd.committed_entries[i], replies));
    DTX_RETURN_IF_ERROR(sm_->Commit());
    for (auto& [respond, response] : replies) respond(std::move(response));
    return Status::Ok();
  }

  // The rest of a Ready's steps, with committed_entries before `applied` already applied: persist,
  // send, install a snapshot, apply, read states, Advance. false after a fatal error.
  bool FinishReady(raft::Ready& rd, size_t applied) {
    if (Status s = storage_->Persist(rd); !s.ok()) {
      Fatal(s);
      return false;
    }
    if (!rd.messages.empty()) transport_->Send(rd.messages);
    if (rd.snapshot && !rd.snapshot->empty()) {
      if (Status s = InstallSnapshot(*rd.snapshot); !s.ok()) {
        Fatal(s);
        return false;
      }
    }
    if (Status s = ApplyCommitted(rd, applied, rd.committed_entries.size()); !s.ok()) {
      Fatal(s);
      return false;
    }
    for (const raft::ReadState& rs : rd.read_states) {
      auto it = reads_.find(rs.context);
      if (it != reads_.end()) it->second.index = rs.index;
    }
    if (rd.soft_state && rd.soft_state->role != raft::Role::kLeader) {
      // ReadIndex requests die with the leadership that took them.
      for (auto it = reads_.begin(); it != reads_.end();) {
        if (it->second.index == 0) {
          it->second.respond(Error(503, "leadership lost before the read was confirmed"));
          it = reads_.erase(it);
        } else {
          ++it;
        }
      }
    }
    raw_->Advance(rd);
    ServeReads();
    return true;
  }

  // The leader's snapshot replaces the state. Writes waiting on entries it covers cannot learn
  // their results any more.
  Status InstallSnapshot(const raft::Snapshot& snap) {
    if (IsLocalSnapshotMarker(snap.data)) {
      return DataLoss("a snapshot from the leader holds no image");
    }
    DTX_RETURN_IF_ERROR(sm_->Restore(snap.data, snap.metadata.index));
    log_bytes_since_snapshot_ = 0;
    for (auto it = writes_.begin(); it != writes_.end() && it->first <= snap.metadata.index;) {
      it->second.respond(
          Error(504, "the node restored a snapshot; the write's outcome is unknown"));
      it = writes_.erase(it);
    }
    ServeFrom(sm_->Pin(), snap.metadata);
    ++snapshots_installed_;
    malloc_trim(0);  // the image's buffers, hundreds of MB at most, go back to the system
    return Status::Ok();
  }

  // Log compaction, in two steps so the io thread never waits for the disk: the worker persists
  // the state (RocksDB flush) up to a pinned view, then the io thread compacts the log to the
  // view's index and serves snapshots from it.
  void MaybeCompact() {
    if (compaction_) return RetryCompaction();
    if (compaction_running_ || log_bytes_since_snapshot_ < options_.snapshot_min_bytes) return;
    // A follower a few entries behind would need the whole image once the leader drops them:
    // the leader waits for a moment when every live follower has the applied entries, up to
    // twice the threshold.
    if (log_bytes_since_snapshot_ < 2 * options_.snapshot_min_bytes && !FollowersHaveApplied()) {
      return;
    }
    const uint64_t index = sm_->applied();
    if (index <= storage_->snapshot_metadata().index) return;
    auto term = storage_->Term(index);
    auto conf = raw_->ConfStateAt(index);
    if (!term.ok() || !conf.ok()) return;  // not known (yet): try after the next round
    auto view = sm_->Pin();
    const raft::SnapshotMetadata md{index, *term, *conf};
    compaction_running_ = true;
    log_bytes_since_snapshot_ = 0;
    asio::post(worker_, [this, view, md] {
      Status s = sm_->Persist();
      asio::post(io_, [this, view, md, s] {
        compaction_running_ = false;
        if (stopped_) return;
        if (!s.ok()) return Fatal(s);
        compaction_ = PendingCompaction{view, md};
        // Not between a Ready and its persist; Process retries at its end.
        if (!ready_pending_) RetryCompaction();
      });
    });
  }

  void RetryCompaction() {
    const raft::SnapshotMetadata md = compaction_->metadata;
    // A leader's snapshot installed meanwhile already covers it.
    if (md.index <= storage_->snapshot_metadata().index) return compaction_.reset();
    Status s =
        storage_->SaveSnapshotAndCompact(md.index, LocalSnapshotMarker(md.index), md.conf_state);
    // kFailedPrecondition: the storage has not seen a commit index that covers the view yet (a
    // restart re-applies from a stored commit index that may lag); a later round will.
    if (s.code() == StatusCode::kFailedPrecondition) return;
    if (!s.ok()) return Fatal(s);
    ServeFrom(compaction_->view, md);
    compaction_.reset();
  }

  // Snapshots for followers come from `view` from now on.
  void ServeFrom(std::shared_ptr<const StateMachine::View> view, raft::SnapshotMetadata md) {
    serving_view_ = std::move(view);
    serving_metadata_ = std::move(md);
    if (image_) {
      image_.reset();
      malloc_trim(0);
    }
  }

  // Storage::Snapshot() for the core (io thread): the image of the serving view once built.
  Result<raft::Snapshot> ServeSnapshot() {
    if (!serving_view_) return Unavailable("dtxkv: no snapshot to serve yet");
    if (image_ && image_->metadata.index == serving_metadata_.index) {
      image_last_asked_tick_ = ticks_;
      return *image_;
    }
    if (!image_building_) {
      image_building_ = true;
      asio::post(worker_, [this, view = serving_view_, md = serving_metadata_] {
        Result<std::string> data = sm_->Serialize(*view);
        asio::post(io_, [this, md, data = std::move(data)]() mutable {
          image_building_ = false;
          if (stopped_) return;
          if (!data.ok()) return Fatal(data.status());
          if (md.index != serving_metadata_.index) return;  // superseded meanwhile
          image_ = std::make_shared<raft::Snapshot>(raft::Snapshot{md, std::move(*data)});
          ++images_built_;
          image_last_asked_tick_ = ticks_;
        });
      });
    }
    return Unavailable("dtxkv: the snapshot image is being built");
  }

  void MaybeDropImage() {
    if (image_ && ticks_ - image_last_asked_tick_ > kImageKeepTicks) {
      image_.reset();
      malloc_trim(0);
    }
  }

  bool FollowersHaveApplied() const {
    if (raw_->role() != raft::Role::kLeader) return true;
    for (const auto& [id, m] : members_) {
      const raft::Progress* p = id == options_.id ? nullptr : raw_->PeerProgress(id);
      if (p != nullptr && p->recent_active && p->match < sm_->applied()) return false;
    }
    return true;
  }

  // Applies a committed entry to the pending batch; the replies to its writers go out after the
  // batch is committed.
  Status Apply(const raft::Entry& e,
               std::vector<std::pair<runtime::Responder, runtime::HttpResponse>>& replies) {
    // Entries the state holds already (re-delivered after a restart) change nothing.
    if (e.index <= sm_->applied()) return Status::Ok();
    log_bytes_since_snapshot_ += raft::EntrySize(e);
    ApplyResult result;
    CommandType type = CommandType::kPut;
    const bool command = !e.data.empty();
    if (command) {
      auto c = DecodeCommand(e.data);
      if (!c.ok()) return DataLoss(fmt::format("entry {}: {}", e.index, c.status().message()));
      type = c->type;
      auto applied = sm_->Apply(e.index, *c);
      if (!applied.ok()) return applied.status();
      result = std::move(*applied);
    } else {
      sm_->Skip(e.index);
    }
    auto [lo, hi] = writes_.equal_range(e.index);
    for (auto it = lo; it != hi; ++it) {
      Write& w = it->second;
      if (w.term != e.term || !command) {
        replies.emplace_back(
            std::move(w.respond),
            Error(503, "leadership changed before the write was committed; not applied"));
        continue;
      }
      json body{{"index", e.index}};
      int status = 200;
      if (type == CommandType::kDelete) body["deleted"] = result.existed;
      if (type == CommandType::kCas) {
        body["swapped"] = result.swapped;
        if (!result.swapped) {
          status = 409;
          body["current"] = result.current ? json(*result.current) : json(nullptr);
        }
      }
      replies.emplace_back(std::move(w.respond), Reply(status, std::move(body)));
    }
    writes_.erase(lo, hi);
    return Status::Ok();
  }

  void ServeReads() {
    for (auto it = reads_.begin(); it != reads_.end();) {
      if (it->second.index != 0 && it->second.index <= sm_->applied()) {
        it->second.respond(ValueResponse(it->second.key));
        it = reads_.erase(it);
      } else {
        ++it;
      }
    }
  }

  void ExpireRequests() {
    const auto now = Clock::now();
    for (auto it = writes_.begin(); it != writes_.end();) {
      if (it->second.deadline <= now) {
        it->second.respond(Error(504, "the write was not applied in time; its outcome is unknown"));
        it = writes_.erase(it);
      } else {
        ++it;
      }
    }
    for (auto it = reads_.begin(); it != reads_.end();) {
      if (it->second.deadline <= now) {
        it->second.respond(Error(503, "no quorum confirmed the read in time"));
        it = reads_.erase(it);
      } else {
        ++it;
      }
    }
  }

  runtime::HttpResponse ValueResponse(const std::string& key) const {
    auto v = sm_->Get(key);
    if (!v.ok()) return Error(500, "reading the state failed: " + v.status().message());
    if (!*v) return Error(404, "no such key");
    runtime::HttpResponse r;
    r.content_type = "application/octet-stream";
    r.body = std::move(**v);
    return r;
  }

  // ---- HTTP (io thread)

  void Handle(runtime::HttpRequest&& req, runtime::Responder respond) {
    if (stopped_) return respond(Error(503, "the node is stopping"));
    const std::string& path = req.path;
    if (path == "/v1/status") {
      if (req.method != "GET") return respond(Error(405, "use GET"));
      return respond(Reply(200, StatusJson()));
    }
    if (path.starts_with("/v1/test/")) return HandleTestFault(req, std::move(respond));
    const bool kv = path.starts_with(kKvPrefix), cas = path.starts_with(kCasPrefix);
    if (!kv && !cas) return respond(Error(404, "no such route: " + path.substr(0, 200)));
    const std::string key = path.substr(kv ? kKvPrefix.size() : kCasPrefix.size());
    if (Status s = ValidateKey(key); !s.ok()) return respond(Error(400, s.message()));

    Command c;
    c.key = key;
    if (kv && req.method == "GET") {
      if (req.QueryParam("stale") == "true") return respond(ValueResponse(key));
      return Linearizable(std::move(req), std::move(respond));
    } else if (kv && req.method == "PUT") {
      if (Status s = ValidateValue(req.body); !s.ok()) return respond(Error(400, s.message()));
      c.type = CommandType::kPut;
      c.value = req.body;
    } else if (kv && req.method == "DELETE") {
      c.type = CommandType::kDelete;
    } else if (cas && req.method == "POST") {
      json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
      if (!body.is_object() || !body.contains("value") || !body["value"].is_string() ||
          !body.contains("expect") || !(body["expect"].is_string() || body["expect"].is_null())) {
        return respond(
            Error(400, "the body must be JSON {\"expect\": string or null, \"value\": string}"));
      }
      c.type = CommandType::kCas;
      c.value = body["value"].get<std::string>();
      if (body["expect"].is_string()) c.expected = body["expect"].get<std::string>();
      if (Status s = ValidateValue(c.value); !s.ok()) return respond(Error(400, s.message()));
    } else {
      return respond(Error(405, kv ? "use GET, PUT or DELETE" : "use POST"));
    }

    if (raw_->role() != raft::Role::kLeader) return Forward(std::move(req), std::move(respond));
    auto index = raw_->Propose(EncodeCommand(c));
    if (!index.ok()) {
      // A leader refuses while it hands leadership over: nothing was appended.
      return respond(Error(503, "the leader refused the write: " + index.status().message()));
    }
    writes_.emplace(*index, Write{raw_->term(), c.type, Deadline(), std::move(respond)});
    ScheduleProcess();
  }

  void Linearizable(runtime::HttpRequest&& req, runtime::Responder respond) {
    if (raw_->role() != raft::Role::kLeader) return Forward(std::move(req), std::move(respond));
    std::string context = std::to_string(++read_seq_);
    if (Status s = raw_->ReadIndex(context); !s.ok()) {
      return respond(Error(503, "the read was refused: " + s.message()));
    }
    reads_.emplace(std::move(context),
                   Read{req.path.substr(kKvPrefix.size()), 0, Deadline(), std::move(respond)});
    ScheduleProcess();
  }

  void Forward(runtime::HttpRequest&& req, runtime::Responder respond) {
    const raft::NodeId lead = raw_->lead();
    if (lead == raft::kNoNode) {
      return respond(Error(503, "no leader: the cluster is electing one or has no quorum"));
    }
    if (req.Header(kForwardedHeader)) {
      return respond(
          Reply(503, json{{"message", "this node is not the leader any more"}, {"leader", lead}}));
    }
    if (blocked_.contains(lead)) {
      return respond(Error(503, fmt::format("the leader {} is unreachable (partitioned)", lead)));
    }
    const Member& m = members_.at(lead);
    runtime::HttpCallSpec spec;
    spec.method = req.method;
    spec.url = fmt::format("http://{}:{}{}", m.http_host, m.http_port, req.target);
    spec.headers[kForwardedHeader] = "1";
    if (auto ct = req.Header("content-type")) spec.headers["Content-Type"] = *ct;
    spec.body = std::move(req.body);
    spec.timeout_ms = options_.request_timeout_ms + 1'000;
    // A CAS or PUT the leader took before dying must not be proposed twice.
    spec.retry_if_unanswered = false;
    const bool value_read = req.method == "GET";
    forward_client_->Call(std::move(spec), [respond = std::move(respond), value_read,
                                            lead](runtime::HttpCallResult r) {
      if (r.status.ok()) {
        runtime::HttpResponse out;
        out.status = r.http_status;
        out.body = std::move(r.body);
        if (value_read && r.http_status == 200) out.content_type = "application/octet-stream";
        return respond(std::move(out));
      }
      // A leader that died after reading the request may have proposed it: unknown, not 503.
      if (r.status.code() == StatusCode::kDeadlineExceeded || r.request_sent) {
        return respond(Error(504, fmt::format("no answer from the leader {}; outcome unknown: {}",
                                              lead, r.status.message())));
      }
      respond(
          Error(503, fmt::format("the leader {} is unreachable: {}", lead, r.status.message())));
    });
  }

  void HandleTestFault(const runtime::HttpRequest& req, runtime::Responder respond) {
    if (!options_.test_faults) return respond(Error(404, "test faults are not enabled"));
    const bool block = req.path == "/v1/test/block";
    if (!block && req.path != "/v1/test/unblock") return respond(Error(404, "no such route"));
    if (req.method != "POST") return respond(Error(405, "use POST"));
    auto peer_text = req.QueryParam("peer");
    raft::NodeId peer = 0;
    if (!peer_text ||
        std::from_chars(peer_text->data(), peer_text->data() + peer_text->size(), peer).ec !=
            std::errc() ||
        !members_.contains(peer) || peer == options_.id) {
      return respond(Error(400, "peer=ID of another member is required"));
    }
    transport_->SetBlocked(peer, block);
    if (block) {
      blocked_.insert(peer);
    } else {
      blocked_.erase(peer);
    }
    respond(Reply(200, json{{"blocked", json(blocked_)}}));
  }

  json StatusJson() const {
    raft::NodeStatus st = raw_->GetStatus();
    json members = json::array();
    for (const auto& [id, m] : members_) {
      members.push_back({{"id", id},
                         {"peer", fmt::format("{}:{}", m.peer_host, m.peer_port)},
                         {"http", fmt::format("http://{}:{}", m.http_host, m.http_port)}});
    }
    return json{{"id", st.id},
                {"role", std::string(raft::RoleName(st.role))},
                {"term", st.term},
                {"leader", st.lead},
                {"commit", st.commit},
                {"applied", sm_->applied()},
                {"last_index", st.last_index},
                {"snapshot_index", storage_->snapshot_metadata().index},
                {"keys", sm_->size()},
                {"state_bytes", sm_->bytes()},
                {"snapshots_installed", snapshots_installed_},
                {"snapshot_images_built", images_built_},
                {"members", std::move(members)}};
  }

  Clock::time_point Deadline() const {
    return Clock::now() + std::chrono::milliseconds(options_.request_timeout_ms);
  }

  NodeOptions options_;
  std::map<raft::NodeId, Member> members_;
  asio::io_context io_;
  asio::steady_timer tick_timer_;
  std::unique_ptr<StateMachine> sm_;
  std::unique_ptr<raft::WalStorage> storage_;
  std::unique_ptr<ServingStorage> serving_storage_;
  std::unique_ptr<raft::RawNode> raw_;
  std::unique_ptr<Transport> transport_;
  std::unique_ptr<runtime::HttpServer> http_;
  std::unique_ptr<runtime::HttpClient> forward_client_;
  std::thread thread_;

  // Runs RocksDB flushes and image builds; joined in Stop().
  asio::thread_pool worker_{1};
  uint64_t log_bytes_since_snapshot_ = 0;
  bool compaction_running_ = false;  // a flush for a compaction is on the worker
  struct PendingCompaction {
    std::shared_ptr<const StateMachine::View> view;
    raft::SnapshotMetadata metadata;
  };
  std::optional<PendingCompaction> compaction_;  // persisted, the log not compacted yet
  // Snapshots for followers: a view at serving_metadata_.index >= the local snapshot's index.
  std::shared_ptr<const StateMachine::View> serving_view_;
  raft::SnapshotMetadata serving_metadata_;
  std::shared_ptr<const raft::Snapshot> image_;  // its image, once built
  bool image_building_ = false;
  uint64_t image_last_asked_tick_ = 0;
  uint64_t snapshots_installed_ = 0;       // leader snapshots restored since start
  uint64_t images_built_ = 0;              // images built for followers since start
  std::multimap<uint64_t, Write> writes_;  // by entry index
  std::map<std::string, Read> reads_;      // by ReadIndex context
  uint64_t read_seq_ = 0;
  std::set<raft::NodeId> blocked_;
  uint64_t ticks_ = 0;
  bool process_scheduled_ = false;
  bool ready_pending_ = false;  // a Ready waits in a posted handler for its persist
  bool stopped_ = false;

  std::once_flag stop_once_;
  std::mutex mu_;
  std::condition_variable done_cv_;
  bool done_ = false;
  Status final_status_;
};

Node::Node(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Node::~Node() { Stop(); }

Result<std::unique_ptr<Node>> Node::Start(NodeOptions options) {
  DTX_RETURN_IF_ERROR(options.Validate());
  if (Status s = options.env->CreateDirs(options.data_dir); !s.ok()) return s;
  auto impl = std::make_unique<Impl>(std::move(options));
  DTX_RETURN_IF_ERROR(impl->Open());
  return std::unique_ptr<Node>(new Node(std::move(impl)));
}

uint16_t Node::http_port() const { return impl_->http_port(); }
uint16_t Node::peer_port() const { return impl_->peer_port(); }
void Node::Stop() { impl_->Stop(); }
Status Node::Wait() { return impl_->Wait(); }

}  // namespace dtx::kv
