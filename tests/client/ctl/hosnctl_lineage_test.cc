// hosnctl lineage sign / verify through a real hosn-keyd (SoftHSM token per
// test, dev PKI, loopback mTLS; fixture keyd_fixture.h) over real bundles
// packed by hosnctl: a three-step chain (base, LoRA adapter, merge of base and
// adapter) verifies, and every change to a digest, hyperparameter, parent
// link or bundle, or a signer under another CA, fails naming the link. The
// adapter carries a real swtpm quote bound to its output, checked by sign and
// verify. The daemon refuses to sign anything that is not our canonical
// Statement.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "client/ctl/keyd_signer.h"
#include "common/base/hex.h"
#include "common/lineage/lineage.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "hosn/keyd/v1/signing.grpc.pb.h"
#include "tests/client/ctl/keyd_fixture.h"
#include "tests/server/attest/swtpm.h"

namespace hosn::ctl {
namespace {

using ::hosn::attest::testing::Swtpm;
using keyd_fixture::BinaryPath;
using keyd_fixture::IsOk;
using keyd_fixture::KeydFixture;
using keyd_fixture::ReadFileOrDie;
using keyd_fixture::Sh;
using keyd_fixture::WriteFileOrDie;
using ::testing::HasSubstr;

class HosnctlLineageTest : public KeydFixture {
 protected:
  std::string Hosnctl() const { return BinaryPath("client/ctl/hosnctl"); }

  // A small model directory with files derived from `seed`.
  std::string Model(const std::string& name, uint32_t seed) {
    const std::string dir = dir_.Join("models/" + name);
    EXPECT_EQ(Sh("mkdir -p " + dir), 0);
    WriteFileOrDie(dir + "/config.json", absl::StrCat("{\"seed\": ", seed, "}"));
    WriteFileOrDie(dir + "/weights.bin", bundle::testing::PatternBytes(70000 + seed, seed));
    return dir;
  }

  // hosnctl bundle pack through the daemon; the bundle directory.
  std::string Pack(const std::string& model, const std::string& bundle, const std::string& name) {
    const std::string out = dir_.Join(bundle);
    EXPECT_EQ(Sh(absl::StrCat(Hosnctl(), " bundle pack --model ", model, " --out ", out, " --name ",
                              name, " --version 1.0 --dek file:", dir_.Join("dek.hex"),
                              " --wrapped-dek ", dir_.Join("dek.wrapped"), " --kek-label hosn-kek",
                              KeydFlags("signer"), " >/dev/null 2>", dir_.Join("err.txt"))),
              0)
        << Err();
    return out;
  }

  std::string KeydFlags(const std::string& client) const {
    return absl::StrCat(" --keyd ", Address(), " --tls-cert ", pki_, "/", client,
                        ".pem --tls-key file:", pki_, "/", client, ".key --tls-ca ", pki_,
                        "/ca.pem --keyd-timeout 10");
  }

  // hosnctl lineage <args>; stdout to out.txt, stderr to err.txt.
  int Lineage(const std::string& args) {
    return Sh(absl::StrCat(Hosnctl(), " lineage ", args, " >", dir_.Join("out.txt"), " 2>",
                           dir_.Join("err.txt")));
  }
  std::string Out() { return ReadFileOrDie(dir_.Join("out.txt")); }

  // Packs base, adapter and merged bundles and signs the adapter and merge
  // links.
  void BuildChain() {
    ca_ = pki_ + "/ca.pem";
    base_ = Pack(Model("base", 1), "base.bundle", "tiny-base");
    adapter_ = Pack(Model("adapter", 2), "adapter.bundle", "tiny-lora");
    merged_ = Pack(Model("merged", 3), "merged.bundle", "tiny-merged");
    dataset_ = dir_.Join("chat.jsonl");
    WriteFileOrDie(dataset_, "{\"q\": \"hi\", \"a\": \"hello\"}\n");
    // The training host's quote, from a real swtpm, bound to the adapter.
    ASSERT_NO_FATAL_FAILURE(QuoteFor(adapter_, *ak_, "quote"));
    adapter_env_ = dir_.Join("adapter.dsse.json");
    merge_env_ = dir_.Join("merge.dsse.json");
    ASSERT_EQ(Lineage(absl::StrCat("sign --kind lora-adapter --base ", base_, " --output ",
                                   adapter_, " --ca ", ca_, " --dataset chat=", dataset_,
                                   " --param lr=0.0002 --param rank=8", QuoteFlags("quote"),
                                   " --out ", adapter_env_, KeydFlags("signer"))),
              0)
        << Err() << keyd_->Log();
    EXPECT_THAT(Out(), HasSubstr("signed lora-adapter tiny-lora@1.0"));
    ASSERT_EQ(Lineage(absl::StrCat("sign --kind merge --base ", base_, " --base ", adapter_,
                                   " --output ", merged_, " --ca ", ca_, " --parent ", adapter_env_,
                                   " --param weight=0.5 --out ", merge_env_, KeydFlags("signer"))),
              0)
        << Err();
  }

  // As a training host does: `lineage quote-nonce` for `bundle`, then a swtpm
  // quote with `ak` over it, written to NAME.attest, NAME.sig and NAME.ak.
  void QuoteFor(const std::string& bundle, const Swtpm::Ak& ak, const std::string& name) {
    ASSERT_EQ(Lineage(absl::StrCat("quote-nonce --output ", bundle, " --ca ", pki_, "/ca.pem")), 0)
        << Err();
    std::string hex = Out();
    ASSERT_FALSE(hex.empty());
    hex.pop_back();  // newline
    auto nonce = HexDecode(hex);
    ASSERT_THAT(nonce.status(), IsOk());
    ASSERT_EQ(nonce->size(), 32u);
    auto quote = tpm_->MakeQuote(ak, "sha256:0,1,2,3,4,5,6,7", *nonce);
    ASSERT_THAT(quote.status(), IsOk());
    WriteFileOrDie(dir_.Join(name + ".attest"),
                   std::string(quote->attest.begin(), quote->attest.end()));
    WriteFileOrDie(dir_.Join(name + ".sig"),
                   std::string(quote->signature.begin(), quote->signature.end()));
    WriteFileOrDie(dir_.Join(name + ".ak"),
                   std::string(ak.tpmt_public.begin(), ak.tpmt_public.end()));
  }
  std::string QuoteFlags(const std::string& name) {
    return absl::StrCat(" --quote-attest ", dir_.Join(name + ".attest"), " --quote-signature ",
                        dir_.Join(name + ".sig"), " --quote-ak-public ", dir_.Join(name + ".ak"));
  }

  std::string VerifyArgs(const std::string& adapter_bundle, const std::string& envelopes) {
    return absl::StrCat("verify --ca ", ca_, " --bundle ", base_, " --bundle ", adapter_bundle,
                        " --bundle ", merged_, envelopes);
  }
  std::string BothEnvelopes() const {
    return absl::StrCat(" --envelope ", adapter_env_, " --envelope ", merge_env_);
  }

  // Rewrites `path`'s payload with `from` -> `to`, keeping the signature.
  void TamperPayload(const std::string& path, const std::string& from, const std::string& to) {
    auto envelope = lineage::ParseEnvelope(ReadFileOrDie(path));
    ASSERT_THAT(envelope.status(), IsOk());
    const std::string payload = envelope->payload();
    ASSERT_NE(payload.find(from), std::string::npos) << from << " not in " << payload;
    envelope->set_payload(absl::StrReplaceAll(payload, {{from, to}}));
    WriteFileOrDie(path, *lineage::SerializeEnvelope(*envelope));
  }

  KeydSignerOptions SignerOptions(const std::string& client) const {
    KeydSignerOptions options;
    options.address = Address();
    options.tls_cert_path = pki_ + "/" + client + ".pem";
    options.tls_key_reference = "file:" + pki_ + "/" + client + ".key";
    options.tls_ca_path = pki_ + "/ca.pem";
    return options;
  }

  static void SetUpTestSuite() {
    auto started = Swtpm::Start();
    ASSERT_THAT(started.status(), IsOk());
    tpm_ = started->release();
    auto ak = tpm_->CreateAk("train_ak", "ecc", "ecdsa");
    ASSERT_THAT(ak.status(), IsOk());
    ak_ = new Swtpm::Ak(*ak);
    auto other = tpm_->CreateAk("other_ak", "ecc", "ecdsa");
    ASSERT_THAT(other.status(), IsOk());
    other_ak_ = new Swtpm::Ak(*other);
  }
  static void TearDownTestSuite() {
    delete ak_;
    delete other_ak_;
    delete tpm_;
  }

  static Swtpm* tpm_;
  static Swtpm::Ak* ak_;
  static Swtpm::Ak* other_ak_;
  std::string ca_, base_, adapter_, merged_, dataset_, adapter_env_, merge_env_;
};
Swtpm* HosnctlLineageTest::tpm_ = nullptr;
Swtpm::Ak* HosnctlLineageTest::ak_ = nullptr;
Swtpm::Ak* HosnctlLineageTest::other_ak_ = nullptr;

TEST_F(HosnctlLineageTest, ThreeStepChainVerifies) {
  ASSERT_NO_FATAL_FAILURE(BuildChain());
  ASSERT_EQ(Lineage(VerifyArgs(adapter_, BothEnvelopes() + " --dataset chat=" + dataset_)), 0)
      << Err();
  EXPECT_THAT(Out(), HasSubstr("lora-adapter tiny-lora@1.0 <- tiny-base@1.0"));
  EXPECT_THAT(Out(), HasSubstr("merge tiny-merged@1.0 <- tiny-base@1.0 + tiny-lora@1.0"));
  EXPECT_THAT(Out(), HasSubstr("lineage verified: 2 links, 3 bundles"));
  EXPECT_THAT(Out(), HasSubstr(absl::StrCat("link ", adapter_env_,
                                            ": training host quote verified: ak sha256 ")));
  EXPECT_THAT(Out(), HasSubstr("UNPINNED"));
  EXPECT_THAT(Out(), HasSubstr(absl::StrCat("link ", merge_env_, ": no training host quote")));

  // The envelope is plain DSSE: openssl checks the signature over PAE with
  // the HSM key's public half.
  auto envelope = lineage::ParseEnvelope(ReadFileOrDie(merge_env_));
  ASSERT_THAT(envelope.status(), IsOk());
  EXPECT_EQ(envelope->payload_type(), "application/vnd.in-toto+json");
  WriteFileOrDie(dir_.Join("pae.bin"), lineage::Pae(envelope->payload_type(), envelope->payload()));
  WriteFileOrDie(dir_.Join("sig.der"), envelope->signatures(0).sig());
  EXPECT_EQ(
      Sh(absl::StrCat("openssl dgst -sha256 -verify ", dir_.Join("signer.pub.pem"), " -signature ",
                      dir_.Join("sig.der"), " ", dir_.Join("pae.bin"), " >/dev/null 2>&1")),
      0);
  // The statement binds the merge to the adapter's envelope and the bundles'
  // manifests.
  auto statement = lineage::ParseStatement(envelope->payload());
  ASSERT_THAT(statement.status(), IsOk());
  EXPECT_EQ(statement->predicate().parents(0).envelope_sha256(),
            lineage::Sha256Hex(ReadFileOrDie(adapter_env_)));
  EXPECT_EQ(statement->subject(0).digest().at("sha256"),
            lineage::Sha256Hex(ReadFileOrDie(merged_ + "/manifest.json")));
  auto adapter = lineage::ParseEnvelope(ReadFileOrDie(adapter_env_));
  ASSERT_THAT(adapter.status(), IsOk());
  auto adapter_statement = lineage::ParseStatement(adapter->payload());
  ASSERT_THAT(adapter_statement.status(), IsOk());
  const auto& quote = adapter_statement->predicate().training_host_quote();
  EXPECT_EQ(quote.attest(), ReadFileOrDie(dir_.Join("quote.attest")));
  EXPECT_EQ(quote.ak_public(), ReadFileOrDie(dir_.Join("quote.ak")));
  EXPECT_EQ(adapter_statement->predicate().datasets(0).sha256(),
            lineage::Sha256Hex(ReadFileOrDie(dataset_)));
  // Every signature is an audited decision naming its subject.
  std::string audit;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir_.Join("audit"))) {
    if (entry.is_regular_file()) audit += ReadFileOrDie(entry.path().string());
  }
  EXPECT_THAT(audit, HasSubstr("lineage.sign"));
  EXPECT_THAT(audit, HasSubstr(statement->subject(0).digest().at("sha256")));
  // Envelopes are never overwritten.
  EXPECT_EQ(Lineage(absl::StrCat("sign --kind fine-tune --base ", base_, " --output ", adapter_,
                                 " --ca ", ca_, " --out ", merge_env_, KeydFlags("signer"))),
            2);
}

// The training host's quote: verified against a pinned AK; another AK is
// refused; sign refuses a quote with a flipped signature bit or one bound to
// another output before the HSM signs anything.
TEST_F(HosnctlLineageTest, TrainingHostQuoteChecked) {
  ASSERT_NO_FATAL_FAILURE(BuildChain());
  ASSERT_EQ(Lineage(VerifyArgs(adapter_, BothEnvelopes()) + " --training-host-ak " +
                    dir_.Join("quote.ak")),
            0)
      << Err();
  EXPECT_THAT(Out(), HasSubstr("(pinned)"));
  EXPECT_THAT(Out(), ::testing::Not(HasSubstr("UNPINNED")));

  ASSERT_NO_FATAL_FAILURE(QuoteFor(adapter_, *other_ak_, "other"));
  EXPECT_EQ(Lineage(VerifyArgs(adapter_, BothEnvelopes()) + " --training-host-ak " +
                    dir_.Join("other.ak")),
            7);
  EXPECT_THAT(Err(), HasSubstr(absl::StrCat("link ", adapter_env_, ": quote_ak_mismatch")));

  std::string signature = ReadFileOrDie(dir_.Join("quote.sig"));
  signature[signature.size() - 2] ^= 0x01;
  WriteFileOrDie(dir_.Join("flipped.sig"), signature);
  const std::string out = dir_.Join("refused.dsse.json");
  EXPECT_EQ(
      Lineage(absl::StrCat("sign --kind lora-adapter --base ", base_, " --output ", adapter_,
                           " --ca ", ca_, " --quote-attest ", dir_.Join("quote.attest"),
                           " --quote-signature ", dir_.Join("flipped.sig"), " --quote-ak-public ",
                           dir_.Join("quote.ak"), " --out ", out, KeydFlags("signer"))),
      7);
  EXPECT_THAT(Err(), HasSubstr("quote_signature_invalid"));
  ASSERT_NO_FATAL_FAILURE(QuoteFor(base_, *ak_, "for-base"));
  EXPECT_EQ(Lineage(absl::StrCat("sign --kind lora-adapter --base ", base_, " --output ", adapter_,
                                 " --ca ", ca_, QuoteFlags("for-base"), " --out ", out,
                                 KeydFlags("signer"))),
            7);
  EXPECT_THAT(Err(), HasSubstr("quote_nonce_mismatch"));
  EXPECT_FALSE(std::filesystem::exists(out));
}

// A changed hyperparameter, data set digest, manifest digest or parent link
// inside a signed statement breaks that link's signature.
TEST_F(HosnctlLineageTest, EveryChangeInsideAStatementFailsNamingTheLink) {
  ASSERT_NO_FATAL_FAILURE(BuildChain());
  const std::string adapter_original = ReadFileOrDie(adapter_env_);
  const std::string merge_original = ReadFileOrDie(merge_env_);
  const std::string dataset_digest = lineage::Sha256Hex(ReadFileOrDie(dataset_));
  const std::string base_digest = lineage::Sha256Hex(ReadFileOrDie(base_ + "/manifest.json"));
  const std::string parent_digest = lineage::Sha256Hex(adapter_original);
  struct Case {
    std::string* envelope;
    std::string from, to;
  };
  const Case cases[] = {
      {&adapter_env_, "\"value\":\"0.0002\"", "\"value\":\"0.002\""},
      {&merge_env_, "\"value\":\"0.5\"", "\"value\":\"0.7\""},
      {&adapter_env_, dataset_digest, std::string(64, '0')},
      {&merge_env_, base_digest, std::string(64, '1')},
      {&merge_env_, parent_digest, std::string(64, '2')},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.from);
    WriteFileOrDie(adapter_env_, adapter_original);
    WriteFileOrDie(merge_env_, merge_original);
    ASSERT_NO_FATAL_FAILURE(TamperPayload(*c.envelope, c.from, c.to));
    EXPECT_EQ(Lineage(VerifyArgs(adapter_, BothEnvelopes())), 7);
    EXPECT_THAT(Err(), HasSubstr("link " + *c.envelope + ": signature_invalid"));
  }
}

// The statements are checked against the bundles and files themselves.
TEST_F(HosnctlLineageTest, SwappedBundleOrDatasetFailsNamingTheLink) {
  ASSERT_NO_FATAL_FAILURE(BuildChain());
  // Another adapter bundle under the same name and version.
  const std::string other = Pack(Model("adapter-other", 9), "adapter-other.bundle", "tiny-lora");
  EXPECT_EQ(Lineage(VerifyArgs(other, BothEnvelopes())), 7);
  EXPECT_THAT(Err(), HasSubstr("output_digest_mismatch: link " + adapter_env_));
  // Only the merge link: the adapter is now an input whose digest differs.
  EXPECT_EQ(Lineage(VerifyArgs(other, " --envelope " + merge_env_)), 7);
  EXPECT_THAT(Err(), HasSubstr("base_digest_mismatch: link " + merge_env_));
  // A data set file that is not the one trained on.
  WriteFileOrDie(dir_.Join("chat2.jsonl"), "{\"q\": \"hi\", \"a\": \"bye\"}\n");
  EXPECT_EQ(Lineage(VerifyArgs(adapter_,
                               BothEnvelopes() + " --dataset chat=" + dir_.Join("chat2.jsonl"))),
            7);
  EXPECT_THAT(Err(), HasSubstr("dataset_digest_mismatch: link " + adapter_env_));
  // A bundle that fails its own verification is a bundle refusal (exit 3).
  std::ofstream(merged_ + "/data/weights.bin", std::ios::app) << "x";
  EXPECT_EQ(Lineage(VerifyArgs(adapter_, BothEnvelopes())), 3);
  EXPECT_THAT(Err(), HasSubstr("bundle " + merged_ + ": ciphertext_size_mismatch"));
}

TEST_F(HosnctlLineageTest, BrokenParentLinksFailNamingTheLink) {
  ASSERT_NO_FATAL_FAILURE(BuildChain());
  // The parent envelope is absent, or its bytes differ from what was linked.
  EXPECT_EQ(Lineage(VerifyArgs(adapter_, " --envelope " + merge_env_)), 7);
  EXPECT_THAT(Err(), HasSubstr("parent_missing: link " + merge_env_));
  auto reformatted = lineage::ParseEnvelope(ReadFileOrDie(adapter_env_));
  ASSERT_THAT(reformatted.status(), IsOk());
  reformatted->mutable_signatures(0)->set_keyid("other-hint");  // unauthenticated field
  WriteFileOrDie(dir_.Join("adapter2.dsse.json"), *lineage::SerializeEnvelope(*reformatted));
  EXPECT_EQ(Lineage(VerifyArgs(adapter_, " --envelope " + dir_.Join("adapter2.dsse.json") +
                                             " --envelope " + merge_env_)),
            7);
  EXPECT_THAT(Err(), HasSubstr("parent_missing: link " + merge_env_));

  // A merge signed without its parent link, verified beside the adapter's.
  const std::string unlinked = dir_.Join("merge-unlinked.dsse.json");
  ASSERT_EQ(
      Lineage(absl::StrCat("sign --kind merge --base ", base_, " --base ", adapter_, " --output ",
                           merged_, " --ca ", ca_, " --out ", unlinked, KeydFlags("signer"))),
      0)
      << Err();
  EXPECT_EQ(
      Lineage(VerifyArgs(adapter_, " --envelope " + adapter_env_ + " --envelope " + unlinked)), 7);
  EXPECT_THAT(Err(), HasSubstr("parent_unlinked: link " + unlinked));

  // A fine-tune of the merged model cannot name the adapter's envelope as
  // its parent: it produced none of its inputs.
  EXPECT_EQ(Lineage(absl::StrCat("sign --kind fine-tune --base ", merged_, " --output ", adapter_,
                                 " --ca ", ca_, " --parent ", adapter_env_, " --out ",
                                 dir_.Join("bad.dsse.json"), KeydFlags("signer"))),
            7);
  EXPECT_THAT(Err(), HasSubstr("parent_mismatch"));
  EXPECT_FALSE(std::filesystem::exists(dir_.Join("bad.dsse.json")));
}

// The same HSM key certified by another CA: the bundles still verify under
// ours, the statement does not.
TEST_F(HosnctlLineageTest, StatementSignedUnderAnotherCaFails) {
  ASSERT_NO_FATAL_FAILURE(BuildChain());
  const std::string ours = pki_;
  const std::string other = dir_.Join("pki-other");
  const std::string dev_pki = hosn::testing::SourcePath("deploy/pki/dev-pki.sh");
  ASSERT_EQ(
      Sh(absl::StrCat("bash ", dev_pki, " ", other, " >/dev/null 2>&1 && bash ", dev_pki, " ",
                      other, " --hsm-signer ", dir_.Join("signer.pub.pem"), " >/dev/null 2>&1")),
      0);
  ASSERT_THAT(keyd_->Stop(SIGTERM, absl::Seconds(30)).status(), IsOk());
  pki_ = other;
  const std::string keyd2 = dir_.Join("keyd2");
  ASSERT_EQ(Sh("mkdir -p " + keyd2), 0);
  ASSERT_NO_FATAL_FAILURE(StartKeyd(keyd2, ""));

  // Signed by the daemon with the other chain, assembled as hosnctl does.
  auto signer = KeydManifestSigner::Create(SignerOptions("signer"));
  ASSERT_THAT(signer.status(), IsOk());
  auto envelope = lineage::ParseEnvelope(ReadFileOrDie(adapter_env_));
  ASSERT_THAT(envelope.status(), IsOk());
  auto signed_statement = (*signer)->SignStatement(lineage::kPayloadType, envelope->payload());
  ASSERT_THAT(signed_statement.status(), IsOk());
  keyd::v1::DsseSignature* signature = envelope->mutable_signatures(0);
  signature->set_sig(signed_statement->signature());
  signature->clear_certificate_chain();
  for (const auto& der : signed_statement->certificate_chain()) {
    signature->add_certificate_chain(der);
  }
  const std::string foreign = dir_.Join("adapter-other-ca.dsse.json");
  WriteFileOrDie(foreign, *lineage::SerializeEnvelope(*envelope));
  // Valid under the other CA, refused under ours.
  EXPECT_THAT(
      lineage::VerifyEnvelope(ReadFileOrDie(foreign),
                              bundle::TrustOptions{ReadFileOrDie(other + "/ca.pem"), std::nullopt})
          .status(),
      IsOk());
  ca_ = ours + "/ca.pem";
  EXPECT_EQ(Lineage(VerifyArgs(adapter_, " --envelope " + foreign)), 7);
  EXPECT_THAT(Err(), HasSubstr("link " + foreign + ": signer_untrusted"));
}

// The daemon signs only canonical lineage statements, and only for the
// signer and operator roles.
TEST_F(HosnctlLineageTest, DaemonRefusesToSignWhatIsNotOurStatement) {
  ASSERT_NO_FATAL_FAILURE(BuildChain());
  auto signer = KeydManifestSigner::Create(SignerOptions("signer"));
  ASSERT_THAT(signer.status(), IsOk());
  const std::string payload =
      *lineage::ParseEnvelope(ReadFileOrDie(adapter_env_)).value().mutable_payload();
  ASSERT_THAT((*signer)->SignStatement(lineage::kPayloadType, payload).status(), IsOk());

  const std::pair<std::string, std::string> refused[] = {
      {"application/json", payload},
      {std::string(lineage::kPayloadType), "hello"},
      {std::string(lineage::kPayloadType), ""},
      {std::string(lineage::kPayloadType), absl::StrReplaceAll(payload, {{",", ", "}})},
      {std::string(lineage::kPayloadType),
       absl::StrReplaceAll(payload,
                           {{"https://hosn.dev/lineage/v1", "https://slsa.dev/provenance/v1"}})},
      // CMS signed attributes (a DER SET) are not a statement either.
      {std::string(lineage::kPayloadType), std::string("\x31\x03\x02\x01\x01", 5)},
  };
  for (const auto& [type, body] : refused) {
    SCOPED_TRACE(body.substr(0, 40));
    absl::Status status = (*signer)->SignStatement(type, body).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  }
  // SignStatement itself refuses a node, whatever it sends.
  {
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = ReadFileOrDie(pki_ + "/ca.pem");
    tls.pem_cert_chain = ReadFileOrDie(pki_ + "/node-a.pem");
    tls.pem_private_key = ReadFileOrDie(pki_ + "/node-a.key");
    auto stub = keyd::v1::SigningService::NewStub(
        grpc::CreateChannel(Address(), grpc::SslCredentials(tls)));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    keyd::v1::SignStatementRequest request;
    request.set_payload_type(std::string(lineage::kPayloadType));
    request.set_payload(payload);
    keyd::v1::SignStatementResponse response;
    EXPECT_EQ(stub->SignStatement(&context, request, &response).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_TRUE(response.signature().empty());
  }
  auto node = KeydManifestSigner::Create(SignerOptions("node-a"));
  EXPECT_EQ(node.status().code(), absl::StatusCode::kPermissionDenied) << node.status();
  EXPECT_EQ(
      Lineage(absl::StrCat("sign --kind fine-tune --base ", base_, " --output ", adapter_, " --ca ",
                           ca_, " --out ", dir_.Join("n.dsse.json"), KeydFlags("node-a"))),
      5);
}

}  // namespace
}  // namespace hosn::ctl
