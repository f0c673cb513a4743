#include "common/audit/audit_verify.h"

#include <algorithm>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "common/audit/audit_format.h"
#include "hosn/keyd/v1/audit_record.pb.h"

namespace hosn::audit {
namespace {

struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};

bool VerifySignature(EVP_PKEY* key, std::string_view message, std::string_view signature) {
  if (key == nullptr) return false;
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
  // Ed25519 takes no digest; every other algorithm we use hashes with SHA-256
  // or the curve's matching hash, which EVP picks from the key when NULL
  // would be wrong, so name SHA-256 except for Ed25519.
  const EVP_MD* md = EVP_PKEY_id(key) == EVP_PKEY_ED25519 ? nullptr : EVP_sha256();
  if (ctx == nullptr || EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, key) != 1) {
    return false;
  }
  return EVP_DigestVerify(ctx.get(), reinterpret_cast<const uint8_t*>(signature.data()),
                          signature.size(), reinterpret_cast<const uint8_t*>(message.data()),
                          message.size()) == 1;
}

// An audit.checkpoint_failed entry that says what the writer says: made by
// the daemon, naming the entry right before it and that entry's hash.
struct CheckpointFailure {
  uint64_t sequence;   // of the audit.checkpoint_failed entry
  uint64_t attempted;  // the sequence the writer tried to sign
  std::string reason;
};

std::optional<CheckpointFailure> AsCheckpointFailure(
    const hosn::keyd::v1::AuditRecord& record, const std::map<uint64_t, std::string>& hashes) {
  if (record.event() != kCheckpointFailedEvent || record.actor() != "daemon") return std::nullopt;
  std::string attempted;
  std::string head;
  for (const auto& attribute : record.attributes()) {
    if (attribute.name() == kCheckpointFailedSequenceAttribute) attempted = attribute.value();
    if (attribute.name() == kCheckpointFailedHeadAttribute) head = attribute.value();
  }
  const uint64_t sequence = record.sequence();
  if (sequence < 2 || attempted != absl::StrCat(sequence - 1)) return std::nullopt;
  auto it = hashes.find(sequence - 1);
  if (it == hashes.end() || it->second != head || record.previous_sha256() != head) {
    return std::nullopt;
  }
  return CheckpointFailure{sequence, sequence - 1, record.reason()};
}

}  // namespace

std::string FindingKindName(FindingKind kind) {
  switch (kind) {
    case FindingKind::kTornTail:
      return "torn tail";
    case FindingKind::kUnparsable:
      return "unparsable";
    case FindingKind::kMissing:
      return "missing";
    case FindingKind::kOutOfOrder:
      return "out of order";
    case FindingKind::kChainBroken:
      return "chain broken";
    case FindingKind::kCheckpointMismatch:
      return "checkpoint mismatch";
    case FindingKind::kTruncated:
      return "truncated";
    case FindingKind::kBadCheckpointSignature:
      return "bad checkpoint signature";
    case FindingKind::kReplicaMismatch:
      return "replica mismatch";
    case FindingKind::kMissingCheckpoint:
      return "missing checkpoint";
    case FindingKind::kAnchorMismatch:
      return "anchor mismatch";
    case FindingKind::kCheckpointOutage:
      return "checkpoint outage";
  }
  return "unknown";
}

VerifyReport VerifyAuditLog(const std::vector<std::string>& log_files,
                            const std::string& checkpoints, EVP_PKEY* signer_key,
                            const VerifyOptions& options) {
  VerifyReport report;
  auto add = [&report](FindingKind kind, uint64_t sequence, std::string message) {
    report.findings.push_back({kind, sequence, std::move(message)});
  };

  // 1. Walk every entry in order, checking numbering and the hash chain, and
  // remember each entry's line hash for the checkpoint pass.
  std::map<uint64_t, std::string> hash_by_sequence;
  std::vector<CheckpointFailure> failures;
  std::string replica;
  std::string previous_hash(kGenesisHash);
  uint64_t expected = 1;
  uint64_t previous_sequence = 0;  // of the line before, 0 at the start
  for (size_t f = 0; f < log_files.size(); ++f) {
    std::string_view rest = log_files[f];
    while (!rest.empty()) {
      const size_t newline = rest.find('\n');
      if (newline == std::string_view::npos) {
        if (f + 1 == log_files.size()) {
          add(FindingKind::kTornTail, expected, "last line has no newline (interrupted write)");
        } else {
          add(FindingKind::kUnparsable, expected, "line without newline inside the log");
        }
        break;
      }
      const std::string_view line = rest.substr(0, newline);
      rest.remove_prefix(newline + 1);
      auto record = ParseRecord(line);
      if (!record.ok()) {
        add(FindingKind::kUnparsable, expected,
            absl::StrCat("entry after ", expected - 1, " does not parse"));
        previous_hash = LineHash(line);
        continue;
      }
      const uint64_t sequence = record->sequence();
      ++report.entries;
      if (replica.empty()) replica = record->replica_id();
      if (record->replica_id() != replica) {
        add(FindingKind::kReplicaMismatch, sequence,
            absl::StrCat("entry ", sequence, " belongs to replica ", record->replica_id()));
      }
      if (sequence > expected) {
        add(FindingKind::kMissing, expected,
            absl::StrCat("entries ", expected, " to ", sequence - 1, " are missing"));
      } else if (sequence < expected) {
        add(FindingKind::kOutOfOrder, sequence,
            absl::StrCat("entry ", sequence, " appears after entry ", expected - 1));
      }
      if (record->previous_sha256() != previous_hash) {
        // The link alone cannot tell which side changed: name both.
        add(FindingKind::kChainBroken, sequence,
            previous_sequence == 0
                ? absl::StrCat("entry ", sequence, " does not chain to the start of the log")
                : absl::StrCat("entry ", sequence, " does not chain to entry ", previous_sequence,
                               " before it: entry ", previous_sequence, " (or entry ", sequence,
                               ") was edited, or entries between them removed or moved"));
      }
      if (auto failure = AsCheckpointFailure(*record, hash_by_sequence)) {
        failures.push_back(*std::move(failure));
      }
      previous_hash = LineHash(line);
      previous_sequence = sequence;
      hash_by_sequence[sequence] = previous_hash;
      report.last_sequence = std::max(report.last_sequence, sequence);
      expected = std::max(expected, sequence + 1);
    }
  }

  // 2. Every checkpoint must be signed by the signer and name the same head
  // as the log at its sequence.
  std::vector<uint64_t> anchored;
  std::string_view rest = checkpoints;
  while (!rest.empty()) {
    const size_t newline = rest.find('\n');
    const std::string_view line = rest.substr(0, newline);
    rest.remove_prefix(newline == std::string_view::npos ? rest.size() : newline + 1);
    if (line.empty()) continue;
    auto checkpoint = ParseCheckpoint(line);
    if (!checkpoint.ok()) {
      add(FindingKind::kBadCheckpointSignature, 0, "a checkpoint line does not parse");
      continue;
    }
    ++report.checkpoints_checked;
    const uint64_t sequence = checkpoint->sequence();
    if (!VerifySignature(signer_key, CheckpointSignedBytes(*checkpoint), checkpoint->signature())) {
      add(FindingKind::kBadCheckpointSignature, sequence,
          absl::StrCat("checkpoint at entry ", sequence, " is not signed by the signer"));
      continue;
    }
    if (!replica.empty() && checkpoint->replica_id() != replica) {
      add(FindingKind::kReplicaMismatch, sequence,
          absl::StrCat("checkpoint at entry ", sequence, " is for replica ",
                       checkpoint->replica_id()));
    }
    auto it = hash_by_sequence.find(sequence);
    if (it == hash_by_sequence.end()) {
      add(FindingKind::kTruncated, sequence,
          absl::StrCat("a signed checkpoint covers entry ", sequence, " but the log ",
                       report.last_sequence == 0
                           ? std::string("is empty")
                           : absl::StrCat("ends at entry ", report.last_sequence)));
    } else if (it->second != checkpoint->head_sha256()) {
      add(FindingKind::kCheckpointMismatch, sequence,
          absl::StrCat("entry ", sequence,
                       " differs from the signed checkpoint (the log up to it was rewritten)"));
    } else {
      anchored.push_back(sequence);
      if (sequence >= report.last_checkpoint_sequence) {
        report.last_checkpoint_sequence = sequence;
        report.last_checkpoint_head = it->second;
      }
    }
  }

  // 3. No stretch of entries may go without a checkpoint for longer than the
  // writer allows: deleted checkpoint lines would otherwise hide a rewrite.
  // A recorded checkpoint failure stands in for the checkpoint the writer
  // could not sign, in this rule only: it signs nothing (step 3b).
  report.unanchored_entries = report.last_sequence - report.last_checkpoint_sequence;
  report.checkpoint_failures = failures.size();
  std::sort(anchored.begin(), anchored.end());
  if (options.checkpoint_interval > 0) {
    const uint64_t max_gap = 2 * options.checkpoint_interval;
    std::vector<uint64_t> marks = anchored;
    for (const CheckpointFailure& failure : failures) marks.push_back(failure.attempted);
    std::sort(marks.begin(), marks.end());
    marks.push_back(report.last_sequence);
    uint64_t previous = 0;
    for (uint64_t sequence : marks) {
      if (sequence > previous + max_gap) {
        add(FindingKind::kMissingCheckpoint, previous + 1,
            absl::StrCat("no signed checkpoint covers entries ", previous + 1, " to ", sequence,
                         " (the writer checkpoints, or records that it could not, at least every ",
                         max_gap, ")"));
      }
      previous = std::max(previous, sequence);
    }
  }

  // 3b. Each outage, as the run of failures before the checkpoint that
  // finally covers them: entries up to a signed checkpoint are covered by it
  // through the chain, however late it came; entries after the newest one
  // are covered by nothing in the files.
  for (size_t i = 0; i < failures.size();) {
    const auto covering = std::lower_bound(anchored.begin(), anchored.end(), failures[i].sequence);
    const uint64_t first = (covering == anchored.begin() ? 0 : *std::prev(covering)) + 1;
    size_t j = i;
    while (j < failures.size() &&
           (covering == anchored.end() || failures[j].sequence <= *covering)) {
      ++j;
    }
    const std::string what =
        absl::StrCat("checkpoint signing failed ", j - i, " time", j - i == 1 ? "" : "s",
                     " (first at entry ", failures[i].attempted, ": ", failures[i].reason, "); ");
    if (covering != anchored.end()) {
      add(FindingKind::kCheckpointOutage, failures[i].sequence,
          absl::StrCat(what, "entries ", first, " to ", *covering,
                       " went unsigned until the signed checkpoint at entry ", *covering,
                       ", which covers them"));
    } else {
      add(FindingKind::kCheckpointOutage, failures[i].sequence,
          absl::StrCat(what, "entries ", first, " to ", report.last_sequence,
                       " are covered by no signed checkpoint (unanchored: whoever can write the "
                       "log could have rewritten them; check them against a checkpoint the "
                       "daemon signs once its HSM is back)"));
    }
    i = j;
  }

  // 4. A checkpoint the auditor obtained from the daemon itself.
  if (options.anchor.has_value()) {
    auto it = hash_by_sequence.find(options.anchor->sequence);
    if (it == hash_by_sequence.end() || it->second != options.anchor->head_sha256) {
      add(FindingKind::kAnchorMismatch, options.anchor->sequence,
          absl::StrCat(
              "the daemon's checkpoint at entry ", options.anchor->sequence,
              it == hash_by_sequence.end() ? " is beyond the log's end" : " names another entry"));
    }
  }

  bool tampered = false;
  for (const Finding& finding : report.findings) {
    if (finding.kind != FindingKind::kTornTail && finding.kind != FindingKind::kCheckpointOutage) {
      tampered = true;
    }
  }
  if (report.checkpoints_checked == 0) {
    add(FindingKind::kTruncated, 0, "no signed checkpoint: the log cannot be verified");
    tampered = true;
  }
  report.verified = !tampered;
  return report;
}

}  // namespace hosn::audit
