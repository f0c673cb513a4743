// Unit tests of common/lineage: PAE, canonical statements and their refusals,
// envelope verification against a pinned CA with software keys from a
// throw-away openssl PKI (the HSM path is tested end to end in
// tests/client/ctl/hosnctl_lineage_test.cc).
#include "common/lineage/lineage.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/bundle/errors.h"
#include "common/lineage/chain.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/bundle/bundle_test_util.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace hosn::lineage {
namespace {

namespace v1 = ::hosn::keyd::v1;
using ::hosn::testing::IsOk;
using ::testing::HasSubstr;

std::string ErrorName(const absl::Status& status) {
  return std::string(bundle::BundleErrorName(status));
}

std::string Hex(char c) { return std::string(64, c); }

LineagePredicate Predicate() {
  LineagePredicate p;
  p.set_run_kind(v1::LINEAGE_RUN_KIND_LORA_ADAPTER);
  v1::LineageModel* base = p.add_base_models();
  base->set_name("base");
  base->set_version("1.0");
  base->set_manifest_sha256(Hex('a'));
  v1::LineageDataset* dataset = p.add_datasets();
  dataset->set_name("chat-v1");
  dataset->set_sha256(Hex('d'));
  for (const auto& [name, value] : {std::pair{"epochs", "3"}, std::pair{"lr", "0.0002"}}) {
    v1::LineageHyperparameter* h = p.add_hyperparameters();
    h->set_name(name);
    h->set_value(value);
  }
  p.mutable_output()->set_name("adapter");
  p.mutable_output()->set_version("1.0");
  p.mutable_output()->set_manifest_sha256(Hex('b'));
  p.set_created_at("2026-12-03T17:16:17Z");
  return p;
}

std::string Payload(const LineagePredicate& p) {
  auto statement = MakeStatement(p);
  EXPECT_THAT(statement.status(), IsOk());
  auto bytes = SerializeStatement(*statement);
  EXPECT_THAT(bytes.status(), IsOk());
  return *bytes;
}

TEST(LineagePae, MatchesTheDsseDefinition) {
  EXPECT_EQ(Pae("http://example.com/HelloWorld", "hello world"),
            "DSSEv1 29 http://example.com/HelloWorld 11 hello world");
  EXPECT_EQ(Pae("", ""), "DSSEv1 0  0 ");
}

TEST(LineageStatement, CanonicalBytesRoundTrip) {
  const std::string payload = Payload(Predicate());
  EXPECT_EQ(payload.rfind("{\"_type\":\"https://in-toto.io/Statement/v1\",\"subject\":[{\"name\":"
                          "\"adapter@1.0\",\"digest\":{\"sha256\":\"" +
                              Hex('b') + "\"}}],\"predicateType\":\"https://hosn.dev/lineage/v1\"",
                          0),
            0u)
      << payload;
  auto parsed = ParseStatement(payload);
  ASSERT_THAT(parsed.status(), IsOk());
  EXPECT_EQ(parsed->predicate().hyperparameters(1).value(), "0.0002");
  EXPECT_EQ(*SerializeStatement(*parsed), payload);
}

TEST(LineageStatement, RefusesWhatIsNotOurCanonicalStatement) {
  const std::string payload = Payload(Predicate());
  EXPECT_EQ(ErrorName(ParseStatement(absl::StrReplaceAll(payload, {{",", ", "}})).status()),
            "statement_not_canonical");
  EXPECT_EQ(ErrorName(ParseStatement(
                          absl::StrReplaceAll(payload, {{"\"_type\"", "\"extra\":1,\"_type\""}}))
                          .status()),
            "statement_not_json");
  EXPECT_EQ(ErrorName(ParseStatement("[]").status()), "statement_not_json");
  EXPECT_EQ(
      ErrorName(ParseStatement(absl::StrReplaceAll(payload, {{"https://hosn.dev/lineage/v1",
                                                              "https://slsa.dev/provenance/v1"}}))
                    .status()),
      "predicate_type_unsupported");
  // The subject must be the output's manifest.
  EXPECT_EQ(ErrorName(ParseStatement(
                          absl::StrReplaceAll(payload, {{"\"sha256\":\"" + Hex('b') + "\"}}",
                                                         "\"sha256\":\"" + Hex('c') + "\"}}"}}))
                          .status()),
            "statement_malformed");

  LineagePredicate merge = Predicate();
  merge.set_run_kind(v1::LINEAGE_RUN_KIND_MERGE);
  EXPECT_THAT(MakeStatement(merge).status().message(), HasSubstr("two or more"));
  LineagePredicate unsorted = Predicate();
  unsorted.mutable_hyperparameters()->SwapElements(0, 1);
  EXPECT_EQ(ErrorName(MakeStatement(unsorted).status()), "statement_malformed");
  LineagePredicate bad_time = Predicate();
  bad_time.set_created_at("2026-12-03 17:16:17");
  EXPECT_EQ(ErrorName(MakeStatement(bad_time).status()), "statement_malformed");
  LineagePredicate upper = Predicate();
  upper.mutable_datasets(0)->set_sha256(std::string(64, 'D'));
  EXPECT_EQ(ErrorName(MakeStatement(upper).status()), "statement_malformed");
  LineagePredicate half_quote = Predicate();
  half_quote.mutable_training_host_quote()->set_attest("x");
  EXPECT_EQ(ErrorName(MakeStatement(half_quote).status()), "statement_malformed");
}

// Signs PAE with a PEM key (the software stand-in for the HSM key).
std::string SignPae(const std::string& key_pem, const std::string& payload) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())), BIO_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  const std::string pae = Pae(kPayloadType, payload);
  size_t length = 0;
  EXPECT_EQ(EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get()), 1);
  EXPECT_EQ(EVP_DigestSign(ctx.get(), nullptr, &length,
                           reinterpret_cast<const unsigned char*>(pae.data()), pae.size()),
            1);
  std::string sig(length, '\0');
  EXPECT_EQ(EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &length,
                           reinterpret_cast<const unsigned char*>(pae.data()), pae.size()),
            1);
  sig.resize(length);
  return sig;
}

std::string PemToDer(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), X509_free);
  unsigned char* der = nullptr;
  const int length = i2d_X509(cert.get(), &der);
  std::string out(reinterpret_cast<char*>(der), length);
  OPENSSL_free(der);
  return out;
}

class LineageEnvelopeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"pki", "other", "noeku"}) {
      ASSERT_EQ(bundle::testing::Run("mkdir -p " + dir_.Join(name)), 0);
    }
    pki_ = bundle::testing::MakeTestPki(dir_.Join("pki"));
    other_ = bundle::testing::MakeTestPki(dir_.Join("other"));
  }

  DsseEnvelope Envelope(const bundle::testing::TestPki& pki, const std::string& payload) {
    DsseEnvelope envelope;
    envelope.set_payload_type(std::string(kPayloadType));
    envelope.set_payload(payload);
    v1::DsseSignature* sig = envelope.add_signatures();
    const std::string der = PemToDer(pki.signer_cert_pem);
    sig->set_keyid(*KeyIdOfCertificate(der));
    sig->set_sig(SignPae(pki.signer_key_pem, payload));
    sig->add_certificate_chain(der);
    return envelope;
  }

  std::string Bytes(const DsseEnvelope& envelope) { return *SerializeEnvelope(envelope); }

  bundle::TrustOptions Trust() const { return {pki_.ca_pem, std::nullopt}; }

  hosn::testing::ScopedTempDir dir_;
  bundle::testing::TestPki pki_;
  bundle::testing::TestPki other_;
};

TEST_F(LineageEnvelopeTest, VerifiesAndRefusesEveryChange) {
  const std::string payload = Payload(Predicate());
  const std::string bytes = Bytes(Envelope(pki_, payload));
  auto verified = VerifyEnvelope(bytes, Trust());
  ASSERT_THAT(verified.status(), IsOk());
  EXPECT_EQ(verified->payload, payload);
  EXPECT_EQ(verified->envelope_sha256, Sha256Hex(bytes));
  EXPECT_EQ(verified->statement.predicate().output().name(), "adapter");

  // A changed hyperparameter (payload re-encoded, signature kept).
  DsseEnvelope changed = Envelope(pki_, payload);
  changed.set_payload(absl::StrReplaceAll(payload, {{"0.0002", "0.0003"}}));
  EXPECT_EQ(ErrorName(VerifyEnvelope(Bytes(changed), Trust()).status()), "signature_invalid");
  // The payload type is authenticated too.
  DsseEnvelope retyped = Envelope(pki_, payload);
  retyped.set_payload_type("application/json");
  EXPECT_EQ(ErrorName(VerifyEnvelope(Bytes(retyped), Trust()).status()),
            "payload_type_unsupported");
  // Another CA's signer, and a signer of ours without codeSigning.
  EXPECT_EQ(ErrorName(VerifyEnvelope(Bytes(Envelope(other_, payload)), Trust()).status()),
            "signer_untrusted");
  auto no_eku = bundle::testing::MakeTestPki(
      dir_.Join("noeku"),
      "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n");
  EXPECT_EQ(ErrorName(VerifyEnvelope(Bytes(Envelope(no_eku, payload)),
                                     bundle::TrustOptions{no_eku.ca_pem, std::nullopt})
                          .status()),
            "signer_key_usage");
  // Two signatures, none, garbage.
  DsseEnvelope two = Envelope(pki_, payload);
  *two.add_signatures() = two.signatures(0);
  EXPECT_EQ(ErrorName(VerifyEnvelope(Bytes(two), Trust()).status()), "envelope_malformed");
  EXPECT_EQ(
      ErrorName(
          VerifyEnvelope("{\"payloadType\":\"application/vnd.in-toto+json\"}", Trust()).status()),
      "envelope_malformed");
  EXPECT_EQ(ErrorName(VerifyEnvelope("not json", Trust()).status()), "envelope_malformed");
  EXPECT_EQ(ErrorName(VerifyEnvelope(bytes, bundle::TrustOptions{"", std::nullopt}).status()),
            "trust_bundle_invalid");
  // Unknown envelope keys are ignored (DSSE), the statement's are not.
  std::string extra = bytes;
  extra.insert(1, "\"note\":\"x\",");
  EXPECT_THAT(VerifyEnvelope(extra, Trust()).status(), IsOk());
}

// Library-level chain: a base bundle, an adapter link, a merge link.
TEST_F(LineageEnvelopeTest, ChainChecksDigestsAndParents) {
  LineagePredicate adapter = Predicate();
  const std::string adapter_bytes = Bytes(Envelope(pki_, Payload(adapter)));
  auto adapter_link = VerifyEnvelope(adapter_bytes, Trust());
  ASSERT_THAT(adapter_link.status(), IsOk());

  LineagePredicate merge;
  merge.set_run_kind(v1::LINEAGE_RUN_KIND_MERGE);
  *merge.add_base_models() = adapter.base_models(0);
  *merge.add_base_models() = adapter.output();
  merge.mutable_output()->set_name("merged");
  merge.mutable_output()->set_version("1.0");
  merge.mutable_output()->set_manifest_sha256(Hex('e'));
  merge.set_created_at("2026-12-03T18:00:00Z");
  merge.add_parents()->set_envelope_sha256(adapter_link->envelope_sha256);
  auto merge_link = VerifyEnvelope(Bytes(Envelope(pki_, Payload(merge))), Trust());
  ASSERT_THAT(merge_link.status(), IsOk());

  ChainInput input;
  input.bundles = {{"b", "base", "1.0", Hex('a')},
                   {"a", "adapter", "1.0", Hex('b')},
                   {"m", "merged", "1.0", Hex('e')}};
  input.links = {{"adapter.dsse", *adapter_link}, {"merge.dsse", *merge_link}};
  input.datasets["chat-v1"] = Hex('d');
  std::vector<std::string> report;
  ASSERT_THAT(VerifyChain(input, &report), IsOk());
  EXPECT_EQ(report.size(), 2u);

  ChainInput swapped = input;
  swapped.bundles[1].manifest_sha256 = Hex('f');
  absl::Status status = VerifyChain(swapped, nullptr);
  EXPECT_EQ(ErrorName(status), "output_digest_mismatch");
  EXPECT_THAT(status.message(), HasSubstr("link adapter.dsse"));
  ChainInput no_parent = input;
  no_parent.links.erase(no_parent.links.begin());
  EXPECT_EQ(ErrorName(VerifyChain(no_parent, nullptr)), "parent_missing");
  ChainInput dataset = input;
  dataset.datasets["chat-v1"] = Hex('0');
  EXPECT_EQ(ErrorName(VerifyChain(dataset, nullptr)), "dataset_digest_mismatch");
  ChainInput unused = input;
  unused.datasets["other"] = Hex('0');
  EXPECT_EQ(ErrorName(VerifyChain(unused, nullptr)), "dataset_unused");
  ChainInput ambiguous = input;
  ambiguous.bundles.push_back({"b2", "base", "1.0", Hex('9')});
  EXPECT_EQ(ErrorName(VerifyChain(ambiguous, nullptr)), "bundle_ambiguous");
}

}  // namespace
}  // namespace hosn::lineage
