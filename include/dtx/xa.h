// XA resource helpers of the dtx C++ SDK: a participant's local branch of a global XA transaction
// on PostgreSQL (PREPARE TRANSACTION) or MariaDB (XA START ... XA PREPARE), the second phase that
// dtxd asks for (op=commit / op=rollback), and recovery of branches left prepared ("in doubt").
//
// The life of one branch (gid, branch_id):
//   1. The application (in the global transaction's body) asks the participant to do its work;
//      the participant calls XaResource::RunAndPrepare: the business SQL runs in a fresh local
//      transaction together with a barrier row (xa, gid, branch_id, "action", "01"), and the
//      transaction is prepared under the branch's xid. The application then registers the branch
//      with dtxd (sdk::Xa::RegisterBranch), whose callback URL leads to step 2.
//   2. dtxd calls back with op=commit or op=rollback; the participant calls Commit or Rollback.
//      Both are idempotent: an xid that is no longer prepared counts as done.
//      Rollback first rolls back the prepared transaction (releasing its locks), then writes the
//      barrier row (xa, gid, branch_id, "action", "01") with reason "rollback", so a RunAndPrepare
//      that arrives after its rollback (a hanging branch) is refused with kAborted instead of
//      leaving a prepared transaction that nobody will finish.
//   3. After a participant or database crash, RecoverInDoubt finishes every prepared branch of
//      this resource by asking dtxd for its global transaction's state.
//
// Xids: PostgreSQL uses the transaction identifier "dtx:<gid>:<branch_id>" (gid up to 128 bytes,
// gid and branch id printable ASCII, the branch id without ':', the whole identifier at most 199
// bytes, PostgreSQL's limit; anything else is kInvalidArgument);
// MariaDB uses gtrid = gid, bqual = "<branch_id>@<database>" and a dtx-specific formatID (gtrid and
// bqual at most 64 bytes each, a MariaDB limit: longer ids are kInvalidArgument). Only xids in
// dtx's format of the resource's own database are listed or touched (PostgreSQL: only its
// database's); other prepared transactions on the server are left alone. RecoverInDoubt rolls back
// branches whose gid its dtxd does not know, so point every participant that shares a database at
// the same dtxd (cluster). Known limit: PostgreSQL's prepared-transaction names are cluster-wide
// while dtx's xid ("dtx:<gid>:<branch_id>") does not name the database, so two databases of one
// cluster must not prepare the same (gid, branch_id) at the same time: the second prepare is
// refused (kAborted), and a rollback issued in the other database is refused by the server
// (SQLSTATE 55000) and retried until the first one finishes.
//
// Server settings: PostgreSQL needs max_prepared_transactions > 0 (e.g. as many as
// max_connections); it is 0 by default, and RunAndPrepare then fails with kFailedPrecondition
// naming the setting. MariaDB needs InnoDB tables; XA is on by default.
//
// Errors are Status values, mapped as by the barrier stores of the same database (connection
// problems, deadlocks and lock-wait timeouts kUnavailable, ...). Every statement is
// bounded by the connection's timeouts.
// Thread-safety: an XaResource holds one connection; use it from one thread at a time and open
// one per thread for concurrency.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dtx/barrier.h"
#include "dtx/status.h"

namespace dtx::sdk {

class DtxClient;
struct MariaDbOptions;  // dtx/barrier.h

// The identity of one XA branch.
struct XaBranch {
  std::string gid;
  std::string branch_id;

  bool operator==(const XaBranch&) const = default;
};

class XaResource {
 public:
  virtual ~XaResource() = default;

  // Ensures the barrier table exists (the resource uses it for hanging protection). Idempotent.
  virtual Status EnsureSchema() = 0;

  // Runs `business` in a new local transaction together with the branch's barrier row and
  // prepares it under the branch's xid. Returns OK once it is prepared (durable on the server).
  // Errors: kAborted if the branch was already rolled back (hanging) or already prepared or
  // committed (a duplicate); the business's own error after rolling back; store errors.
  // On any error nothing stays prepared. The LocalTx given to `business` runs statements in the
  // branch's transaction; its Commit and Rollback are refused (kFailedPrecondition): the result
  // of `business` decides. A business that ignores a failed statement's error and returns OK
  // gets kAborted (the failed transaction cannot be prepared).
  virtual Status RunAndPrepare(const XaBranch& branch, const BusinessFn& business) = 0;

  // Commits the prepared branch. OK also if it is not prepared (already committed).
  virtual Status Commit(const XaBranch& branch) = 0;

  // Rolls the prepared branch back (OK if it is not prepared) and records the rollback in the
  // barrier so that a later RunAndPrepare of this branch is refused.
  virtual Status Rollback(const XaBranch& branch) = 0;

  // Every branch in dtx's xid format that is prepared on the server, from any connection.
  virtual Result<std::vector<XaBranch>> ListPrepared() = 0;
};

// Connects to PostgreSQL (libpq connection string) and ensures the barrier schema.
Result<std::unique_ptr<XaResource>> OpenPostgresXa(const std::string& conninfo);

// Connects to MariaDB and ensures the barrier schema.
Result<std::unique_ptr<XaResource>> OpenMariaDbXa(const MariaDbOptions& options);

// What RecoverInDoubt did.
struct XaRecoveryReport {
  int committed = 0;    // dtxd had decided commit (status submitted or succeed)
  int rolled_back = 0;  // dtxd had decided abort (aborting or failed), or does not know the gid
  int left = 0;         // still undecided (prepared), or dtxd could not be asked: try again later
};

// Finishes every prepared branch of `resource` by the state of its global transaction in dtxd:
// submitted/succeed -> Commit; aborting/failed -> Rollback; prepared -> left alone (dtxd will
// call back). A gid that dtxd does not know is rolled back: a branch is prepared before it is
// registered, so dtxd never decided commit for it. Errors of single branches are counted in
// `left`; the call fails only if the resource cannot list its prepared branches.
Result<XaRecoveryReport> RecoverInDoubt(XaResource& resource, DtxClient& dtxd);

}  // namespace dtx::sdk
