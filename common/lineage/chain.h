// Verification of a lineage chain (docs/lineage.md, "Verifying a chain"):
// verified statements (links) against verified bundles and, optionally, data
// set files, and against each other through their parent links.
//
// The inputs are already verified one by one (VerifyEnvelope for each
// envelope, bundle::VerifyBundle for each bundle); this checks that they fit
// together. Stateless and thread-safe.
#ifndef HOSN_COMMON_LINEAGE_CHAIN_H_
#define HOSN_COMMON_LINEAGE_CHAIN_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/lineage/lineage.h"

namespace hosn::lineage {

struct ChainBundle {
  std::string label;  // how the caller names it (the directory)
  std::string name;
  std::string version;
  std::string manifest_sha256;  // hex SHA-256 of the verified manifest bytes
};

struct ChainLink {
  std::string label;  // how the caller names it (the envelope file)
  VerifiedStatement verified;
};

struct ChainInput {
  std::vector<ChainBundle> bundles;
  std::vector<ChainLink> links;
  // Data set name -> hex SHA-256 of the file the caller has.
  std::map<std::string, std::string> datasets;
};

// Checks, for every link in order: its output and every input model are
// among the bundles by name@version with the digest the statement records;
// every parent envelope is among the links and produced one of its inputs;
// every input that a given link produced is linked as a parent; every data
// set the caller gave matches the statements naming it. Then that every
// given data set is named by some statement. Bundles with one name@version
// but different manifests are refused up front (bundle_ambiguous).
//
// Errors: FailedPrecondition with a named error and the failing link:
// "<name>: link <label> (<subject>): <detail>" with name one of
// bundle_ambiguous, output_bundle_missing, output_digest_mismatch,
// base_bundle_missing, base_digest_mismatch, parent_missing,
// parent_mismatch, parent_unlinked, dataset_digest_mismatch, dataset_unused.
// On success appends one line per link to `report`.
absl::Status VerifyChain(const ChainInput& input, std::vector<std::string>* report);

}  // namespace hosn::lineage

#endif  // HOSN_COMMON_LINEAGE_CHAIN_H_
