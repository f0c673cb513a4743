// Token data objects (KeyStore::PutDataObject and friends) against a fresh
// SoftHSM token per test: put, replace, get, list, delete; the crash rule
// (readers take the newest complete version); a second daemon replica, with
// its own copy of the SoftHSM library and so its own in-memory state, that
// sees the first one's writes and deletes at once although both remember
// object handles (DataObjectIndex); and recovery with remembered handles.
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/hsm/key_store.h"
#include "tests/server/hsm/hsm_test_util.h"
#include "tests/testing/softhsm_token.h"
#include "tests/testing/status_matchers.h"

namespace hosn::hsm {
namespace {

using ::hosn::hsm::testing::FaultModule;
using ::hosn::hsm::testing::OptionsFor;
using ::hosn::hsm::testing::RawTokenSession;
using ::hosn::testing::SoftHsmToken;
using ::hosn::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Optional;

// What `store` reads for `label`; "<error>" (and a test failure) if the
// read failed.
std::optional<std::string> Read(KeyStore& store, std::string_view label) {
  absl::StatusOr<std::optional<std::string>> value = store.GetDataObject(label);
  EXPECT_TRUE(value.ok()) << value.status();
  return value.ok() ? *value : std::optional<std::string>("<error>");
}

std::vector<std::string> List(KeyStore& store, std::string_view prefix) {
  absl::StatusOr<std::vector<std::string>> labels = store.ListDataObjects(prefix);
  EXPECT_TRUE(labels.ok()) << labels.status();
  return labels.ok() ? *labels : std::vector<std::string>{"<error>"};
}

// The attributes every daemon data object has, for `label` (which must
// outlive the result).
std::vector<CK_ATTRIBUTE> DaemonTemplate(const std::string& label) {
  static CK_OBJECT_CLASS data = CKO_DATA;
  static CK_BBOOL yes = CK_TRUE;
  static char application[] = "hosn-keyd";
  return {{CKA_CLASS, &data, sizeof(data)},
          {CKA_TOKEN, &yes, sizeof(yes)},
          {CKA_PRIVATE, &yes, sizeof(yes)},
          {CKA_APPLICATION, application, sizeof(application) - 1},
          {CKA_LABEL, const_cast<char*>(label.data()), label.size()}};
}

class DataObjectsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HOSN_ASSERT_OK_AND_ASSIGN(token_, SoftHsmToken::Create("hosn-data"));
    HOSN_ASSERT_OK_AND_ASSIGN(store_, KeyStore::Create(OptionsFor(*token_)));
    raw_ = std::make_unique<RawTokenSession>(*token_);
  }

  // Creates a data object by hand, as a put that crashed after its create
  // would leave it.
  void CreateRaw(const std::string& label, const std::string& value) {
    std::vector<CK_ATTRIBUTE> t = DaemonTemplate(label);
    t.push_back({CKA_VALUE, const_cast<char*>(value.data()), value.size()});
    CK_OBJECT_HANDLE handle = CK_INVALID_HANDLE;
    ASSERT_EQ(raw_->fn()->C_CreateObject(raw_->handle(), t.data(), t.size(), &handle), CKR_OK);
  }

  // A private copy of libsofthsm2.so: a KeyStore that loads it shares
  // nothing with the others but the token files, as a second daemon process.
  std::string ModuleCopy(const std::string& name) {
    const std::string copy = token_->dir() + "/libsofthsm2-" + name + ".so";
    std::filesystem::copy_file(SoftHsmToken::kModulePath, copy);
    return copy;
  }
  std::unique_ptr<KeyStore> OpenReplica(const std::string& name) {
    absl::StatusOr<std::unique_ptr<KeyStore>> replica =
        KeyStore::Create(OptionsFor(*token_, ModuleCopy(name)));
    EXPECT_TRUE(replica.ok()) << replica.status();
    return replica.ok() ? *std::move(replica) : nullptr;
  }

  static std::string Header(uint64_t generation, uint64_t nonce) {
    std::string header(16, '\0');
    for (size_t i = 0; i < 8; ++i) {
      header[i] = static_cast<char>(generation >> (56 - 8 * i));
      header[8 + i] = static_cast<char>(nonce >> (56 - 8 * i));
    }
    return header;
  }

  std::unique_ptr<SoftHsmToken> token_;
  std::unique_ptr<KeyStore> store_;
  std::unique_ptr<RawTokenSession> raw_;
};

TEST_F(DataObjectsTest, PutReplaceGetDelete) {
  EXPECT_EQ(Read(*store_, "node/a"), std::nullopt);
  HOSN_ASSERT_OK(store_->PutDataObject("node/a", "v1"));
  EXPECT_THAT(Read(*store_, "node/a"), Optional(std::string("v1")));
  HOSN_ASSERT_OK(store_->PutDataObject("node/a", std::string("v2\0binary", 9)));
  EXPECT_THAT(Read(*store_, "node/a"), Optional(std::string("v2\0binary", 9)));
  EXPECT_EQ(raw_->CountDataObjects("node/a"), 1u);  // the old version is gone
  HOSN_ASSERT_OK(store_->PutDataObject("node/a", ""));
  EXPECT_THAT(Read(*store_, "node/a"), Optional(std::string()));
  HOSN_ASSERT_OK(store_->DeleteDataObject("node/a"));
  EXPECT_EQ(Read(*store_, "node/a"), std::nullopt);
  EXPECT_EQ(raw_->CountDataObjects("node/a"), 0u);
  HOSN_EXPECT_OK(store_->DeleteDataObject("node/a"));  // absent is fine

  const PoolMetrics metrics = store_->Metrics();
  EXPECT_EQ(metrics.ops[static_cast<size_t>(OpKind::kOther)].ok, 5u);  // 3 puts, 2 deletes
  EXPECT_EQ(metrics.ops[static_cast<size_t>(OpKind::kFind)].ok, 5u);   // 5 gets
}

TEST_F(DataObjectsTest, StoredAsPrivateTokenObjectsOfTheDaemon) {
  HOSN_ASSERT_OK(store_->PutDataObject("policy/p", "allow"));
  const std::string label = "policy/p";
  std::vector<CK_ATTRIBUTE> t = DaemonTemplate(label);
  EXPECT_EQ(raw_->Count(t.data(), t.size()), 1u);
}

TEST_F(DataObjectsTest, ListByPrefixSorted) {
  HOSN_ASSERT_OK(store_->PutDataObject("node/b", "2"));
  HOSN_ASSERT_OK(store_->PutDataObject("node/a", "1"));
  HOSN_ASSERT_OK(store_->PutDataObject("node/a", "1 again"));
  HOSN_ASSERT_OK(store_->PutDataObject("policy/x", "3"));
  // Another application's data object on the token is not ours.
  CK_OBJECT_CLASS data = CKO_DATA;
  CK_BBOOL yes = CK_TRUE;
  const std::string label = "node/foreign";
  CK_ATTRIBUTE t[] = {{CKA_CLASS, &data, sizeof(data)},
                      {CKA_TOKEN, &yes, sizeof(yes)},
                      {CKA_LABEL, const_cast<char*>(label.data()), label.size()}};
  CK_OBJECT_HANDLE handle = CK_INVALID_HANDLE;
  ASSERT_EQ(raw_->fn()->C_CreateObject(raw_->handle(), t, 3, &handle), CKR_OK);

  EXPECT_THAT(List(*store_, "node/"), ElementsAre("node/a", "node/b"));
  EXPECT_THAT(List(*store_, ""), ElementsAre("node/a", "node/b", "policy/x"));
  EXPECT_THAT(List(*store_, "zzz"), IsEmpty());
  HOSN_ASSERT_OK(store_->DeleteDataObject("node/a"));
  EXPECT_THAT(List(*store_, "node/"), ElementsAre("node/b"));
}

// A put that crashed after creating its version and before destroying the
// old one leaves two versions: readers take the newer. A stray object
// without a version header is ignored. The next put cleans up.
// What a daemon finds when it starts after a put crashed midway (here on
// another replica, or on itself before the restart): a reader that has never
// seen the label takes the newest complete version.
TEST_F(DataObjectsTest, ReadersTakeTheNewestCompleteVersion) {
  HOSN_ASSERT_OK(store_->PutDataObject("node/a", "old"));  // generation 1
  CreateRaw("node/a", Header(2, 7) + "new");
  CreateRaw("node/a", "short");  // no header: never a value
  EXPECT_THAT(Read(*OpenReplica("r1"), "node/a"), Optional(std::string("new")));
  // Two writers that both took generation 3: the higher random part wins,
  // for every reader.
  CreateRaw("node/a", Header(3, 5) + "loser");
  CreateRaw("node/a", Header(3, 9) + "winner");
  EXPECT_THAT(Read(*OpenReplica("r2"), "node/a"), Optional(std::string("winner")));
  HOSN_ASSERT_OK(store_->PutDataObject("node/a", "newest"));
  EXPECT_THAT(Read(*store_, "node/a"), Optional(std::string("newest")));
  // Only the headerless stray remains beside the newest version.
  EXPECT_EQ(raw_->CountDataObjects("node/a"), 2u);
  HOSN_ASSERT_OK(store_->DeleteDataObject("node/a"));
  EXPECT_EQ(Read(*store_, "node/a"), std::nullopt);
}

// A reader that remembered the old version's handle keeps it while the old
// version lives beside a newer one (the put that made the newer one failed
// before destroying it, and its writer was told so), but no longer than one
// index refresh period: the rebuilt index leaves out labels with several
// versions, and their readers search again.
TEST_F(DataObjectsTest, HalfDonePutSeenWithinOneIndexRefresh) {
  KeyStoreOptions options = OptionsFor(*token_, ModuleCopy("fast"));
  options.data_index_refresh = absl::Milliseconds(300);
  HOSN_ASSERT_OK_AND_ASSIGN(std::unique_ptr<KeyStore> reader, KeyStore::Create(options));
  HOSN_ASSERT_OK(store_->PutDataObject("node/a", "old"));
  EXPECT_THAT(Read(*reader, "node/a"), Optional(std::string("old")));
  CreateRaw("node/a", Header(2, 1) + "new");
  absl::SleepFor(absl::Milliseconds(400));
  EXPECT_THAT(Read(*reader, "node/a"), Optional(std::string("new")));
}

// Many completed writes from two replicas, each read by both right after:
// every read sees the last completed write, whichever replica made it and
// whatever handle the reader remembered.
TEST_F(DataObjectsTest, RememberedHandlesNeverHideACompletedWrite) {
  std::unique_ptr<KeyStore> replica = OpenReplica("r");
  HOSN_ASSERT_OK(store_->PutDataObject("policy/gpu", "p0"));
  HOSN_ASSERT_OK(store_->PutDataObject("node/decoy", "decoy"));
  for (int round = 0; round < 12; ++round) {
    SCOPED_TRACE(round);
    KeyStore& writer = round % 2 == 0 ? *store_ : *replica;
    const std::string value = "value-" + std::to_string(round);
    HOSN_ASSERT_OK(writer.PutDataObject("node/a", value));
    EXPECT_THAT(Read(*store_, "node/a"), Optional(value));
    EXPECT_THAT(Read(*replica, "node/a"), Optional(value));
    EXPECT_THAT(Read(*replica, "policy/gpu"), Optional(std::string("p0")));
    if (round == 6) {
      HOSN_ASSERT_OK(replica->DeleteDataObject("node/a"));
      EXPECT_EQ(Read(*store_, "node/a"), std::nullopt);
    }
  }
  EXPECT_EQ(raw_->CountDataObjects("node/a"), 1u);
}

// Through the fault-injecting module: a read of a remembered label does not
// search the token (a failing C_FindObjectsInit goes unnoticed), a read
// after the object was replaced does (and fails with it); and case P2 for
// data objects: after the device is lost and the pool re-initialises the
// module, remembered handles belong to the old module instance, yet reads
// return the right values (never another object's).
TEST_F(DataObjectsTest, RememberedReadsSkipTheSearchAndSurviveRecovery) {
  // The fault module forwards to its own copy of SoftHSM, so that its
  // re-initialisation leaves the fixture's instance alone.
  ASSERT_EQ(::setenv("HOSN_FAULT_PKCS11_TARGET", ModuleCopy("fault").c_str(), 1), 0);
  FaultModule faults;
  HOSN_ASSERT_OK_AND_ASSIGN(std::unique_ptr<KeyStore> store,
                            KeyStore::Create(OptionsFor(*token_, FaultModule::Path())));
  HOSN_ASSERT_OK(store->PutDataObject("node/b", "bee"));
  HOSN_ASSERT_OK(store->PutDataObject("node/a", "ay"));
  EXPECT_THAT(Read(*store, "node/a"), Optional(std::string("ay")));
  EXPECT_THAT(Read(*store, "node/b"), Optional(std::string("bee")));

  ASSERT_TRUE(faults.Configure("fn=C_FindObjectsInit,count=-1,rv=CKR_FUNCTION_FAILED"));
  for (int i = 0; i < 10; ++i) {
    EXPECT_THAT(Read(*store, "node/a"), Optional(std::string("ay")));
  }
  EXPECT_EQ(faults.Fired(), 0);
  HOSN_ASSERT_OK(store_->PutDataObject("node/a", "ay-2"));  // through the fixture's instance
  EXPECT_FALSE(store->GetDataObject("node/a").ok());
  EXPECT_GE(faults.Fired(), 1);
  ASSERT_TRUE(faults.Configure(""));
  EXPECT_THAT(Read(*store, "node/a"), Optional(std::string("ay-2")));

  ASSERT_TRUE(faults.Configure("fn=C_GetAttributeValue,count=1,rv=CKR_DEVICE_REMOVED,kill=1"));
  for (int i = 0; i < 5; ++i) {
    SCOPED_TRACE(i);
    EXPECT_THAT(Read(*store, "node/a"), Optional(std::string("ay-2")));
    EXPECT_THAT(Read(*store, "node/b"), Optional(std::string("bee")));
  }
  EXPECT_EQ(faults.Fired(), 1);
  EXPECT_GE(store->Metrics().recoveries, 1u);
}

TEST_F(DataObjectsTest, BadLabelsAndValuesRefused) {
  EXPECT_THAT(store_->PutDataObject("", "x"),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(store_->PutDataObject(std::string(129, 'l'), "x"),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(store_->GetDataObject(""),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(store_->PutDataObject("big", std::string(KeyStore::kMaxDataObjectBytes + 1, 'v')),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  const std::string largest(KeyStore::kMaxDataObjectBytes, 'v');
  HOSN_ASSERT_OK(store_->PutDataObject(std::string(128, 'l'), largest));
  EXPECT_THAT(Read(*store_, std::string(128, 'l')), Optional(largest));
}

// Two replicas: the second KeyStore loads its own copy of libsofthsm2.so, so
// it shares nothing with the first but the token files (as a second daemon
// process would). Each sees the other's writes and deletes on its next call.
TEST_F(DataObjectsTest, SecondReplicaSeesWritesAndDeletesAtOnce) {
  std::unique_ptr<KeyStore> replica = OpenReplica("replica");
  ASSERT_NE(replica, nullptr);
  // Both replicas read first, so any cache they might keep is warm.
  EXPECT_EQ(Read(*store_, "node/a"), std::nullopt);
  EXPECT_EQ(Read(*replica, "node/a"), std::nullopt);

  HOSN_ASSERT_OK(store_->PutDataObject("node/a", "enrolled"));
  EXPECT_THAT(Read(*replica, "node/a"), Optional(std::string("enrolled")));
  EXPECT_THAT(List(*replica, "node/"), ElementsAre("node/a"));

  HOSN_ASSERT_OK(replica->PutDataObject("node/a", "revoked"));
  EXPECT_THAT(Read(*store_, "node/a"), Optional(std::string("revoked")));

  HOSN_ASSERT_OK(store_->DeleteDataObject("node/a"));
  EXPECT_EQ(Read(*replica, "node/a"), std::nullopt);
  EXPECT_THAT(List(*replica, ""), IsEmpty());
}

}  // namespace
}  // namespace hosn::hsm
