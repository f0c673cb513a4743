// The fault-injecting PKCS#11 module; see fault_pkcs11.h.
#include "tests/server/hsm/fault_pkcs11/fault_pkcs11.h"

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "p11-kit/pkcs11.h"

namespace {

// Every entry of the 2.40 function list; the flag says whether the first
// argument is a session handle.
// clang-format off
#define HOSN_FAULT_FUNCTIONS(X) \
  X(C_Initialize, false) \
  X(C_Finalize, false) \
  X(C_GetInfo, false) \
  X(C_GetFunctionList, false) \
  X(C_GetSlotList, false) \
  X(C_GetSlotInfo, false) \
  X(C_GetTokenInfo, false) \
  X(C_GetMechanismList, false) \
  X(C_GetMechanismInfo, false) \
  X(C_InitToken, false) \
  X(C_InitPIN, true) \
  X(C_SetPIN, true) \
  X(C_OpenSession, false) \
  X(C_CloseSession, true) \
  X(C_CloseAllSessions, false) \
  X(C_GetSessionInfo, true) \
  X(C_GetOperationState, true) \
  X(C_SetOperationState, true) \
  X(C_Login, true) \
  X(C_Logout, true) \
  X(C_CreateObject, true) \
  X(C_CopyObject, true) \
  X(C_DestroyObject, true) \
  X(C_GetObjectSize, true) \
  X(C_GetAttributeValue, true) \
  X(C_SetAttributeValue, true) \
  X(C_FindObjectsInit, true) \
  X(C_FindObjects, true) \
  X(C_FindObjectsFinal, true) \
  X(C_EncryptInit, true) \
  X(C_Encrypt, true) \
  X(C_EncryptUpdate, true) \
  X(C_EncryptFinal, true) \
  X(C_DecryptInit, true) \
  X(C_Decrypt, true) \
  X(C_DecryptUpdate, true) \
  X(C_DecryptFinal, true) \
  X(C_DigestInit, true) \
  X(C_Digest, true) \
  X(C_DigestUpdate, true) \
  X(C_DigestKey, true) \
  X(C_DigestFinal, true) \
  X(C_SignInit, true) \
  X(C_Sign, true) \
  X(C_SignUpdate, true) \
  X(C_SignFinal, true) \
  X(C_SignRecoverInit, true) \
  X(C_SignRecover, true) \
  X(C_VerifyInit, true) \
  X(C_Verify, true) \
  X(C_VerifyUpdate, true) \
  X(C_VerifyFinal, true) \
  X(C_VerifyRecoverInit, true) \
  X(C_VerifyRecover, true) \
  X(C_DigestEncryptUpdate, true) \
  X(C_DecryptDigestUpdate, true) \
  X(C_SignEncryptUpdate, true) \
  X(C_DecryptVerifyUpdate, true) \
  X(C_GenerateKey, true) \
  X(C_GenerateKeyPair, true) \
  X(C_WrapKey, true) \
  X(C_UnwrapKey, true) \
  X(C_DeriveKey, true) \
  X(C_SeedRandom, true) \
  X(C_GenerateRandom, true) \
  X(C_GetFunctionStatus, true) \
  X(C_CancelFunction, true) \
  X(C_WaitForSlotEvent, false)
// clang-format on

struct Rule {
  std::string function;
  long skip = 0;
  long count = 1;
  CK_RV rv = CKR_GENERAL_ERROR;
  bool kill = false;
  bool rewrite_attribute = false;
  CK_ATTRIBUTE_TYPE attribute = 0;
  long seen = 0;   // matching calls so far
  long fired = 0;  // calls failed so far
};

struct State {
  std::mutex mu;
  std::vector<Rule> rules;
  long fired = 0;
  std::set<CK_SESSION_HANDLE> open_sessions;
  std::set<CK_SESSION_HANDLE> dead_sessions;
  // Keys made by C_UnwrapKey or C_DeriveKey and not yet given to a
  // successful C_DestroyObject (closing their session does not count).
  std::set<CK_OBJECT_HANDLE> live_keys;
};

// A static object, not a leaked pointer: tests load and unload this module
// many times in one process.
State& GetState() {
  static State state;
  return state;
}

CK_FUNCTION_LIST* g_real = nullptr;
CK_FUNCTION_LIST g_list;

CK_RV ParseRv(const std::string& text, bool* ok) {
  static const struct {
    const char* name;
    CK_RV rv;
  } kNames[] = {
      {"CKR_GENERAL_ERROR", CKR_GENERAL_ERROR},
      {"CKR_FUNCTION_FAILED", CKR_FUNCTION_FAILED},
      {"CKR_ARGUMENTS_BAD", CKR_ARGUMENTS_BAD},
      {"CKR_DEVICE_ERROR", CKR_DEVICE_ERROR},
      {"CKR_DEVICE_REMOVED", CKR_DEVICE_REMOVED},
      {"CKR_TOKEN_NOT_PRESENT", CKR_TOKEN_NOT_PRESENT},
      {"CKR_SESSION_HANDLE_INVALID", CKR_SESSION_HANDLE_INVALID},
      {"CKR_SESSION_CLOSED", CKR_SESSION_CLOSED},
      {"CKR_USER_NOT_LOGGED_IN", CKR_USER_NOT_LOGGED_IN},
      {"CKR_OPERATION_ACTIVE", CKR_OPERATION_ACTIVE},
      {"CKR_DATA_LEN_RANGE", CKR_DATA_LEN_RANGE},
      {"CKR_HOST_MEMORY", CKR_HOST_MEMORY},
  };
  *ok = true;
  for (const auto& entry : kNames) {
    if (text == entry.name) return entry.rv;
  }
  char* end = nullptr;
  const unsigned long value = std::strtoul(text.c_str(), &end, 0);
  if (text.empty() || *end != '\0') *ok = false;
  return value;
}

bool ParseSpec(const std::string& spec, std::vector<Rule>* rules) {
  size_t start = 0;
  while (start <= spec.size()) {
    size_t end = spec.find(';', start);
    if (end == std::string::npos) end = spec.size();
    const std::string text = spec.substr(start, end - start);
    start = end + 1;
    if (text.empty()) continue;
    Rule rule;
    size_t field_start = 0;
    while (field_start <= text.size()) {
      size_t field_end = text.find(',', field_start);
      if (field_end == std::string::npos) field_end = text.size();
      const std::string field = text.substr(field_start, field_end - field_start);
      field_start = field_end + 1;
      const size_t eq = field.find('=');
      if (eq == std::string::npos) return false;
      const std::string key = field.substr(0, eq);
      const std::string value = field.substr(eq + 1);
      bool ok = true;
      if (key == "fn") {
        rule.function = value;
      } else if (key == "skip") {
        rule.skip = std::strtol(value.c_str(), nullptr, 0);
      } else if (key == "count") {
        rule.count = std::strtol(value.c_str(), nullptr, 0);
      } else if (key == "rv") {
        rule.rv = ParseRv(value, &ok);
      } else if (key == "kill") {
        rule.kill = value == "1";
      } else if (key == "attr") {
        rule.rewrite_attribute = true;
        rule.attribute = ParseRv(value, &ok);
      } else {
        return false;
      }
      if (!ok) return false;
    }
    if (rule.function.empty()) return false;
    rules->push_back(rule);
  }
  return true;
}

// Decides whether this call fails. Returns true with *rv set if it does.
bool ShouldFail(const char* function, bool has_session, CK_SESSION_HANDLE session, CK_RV* rv,
                bool* rewrite, CK_ATTRIBUTE_TYPE* attribute) {
  State& state = GetState();
  std::lock_guard<std::mutex> lock(state.mu);
  if (has_session && std::strcmp(function, "C_CloseSession") != 0 &&
      state.dead_sessions.count(session) != 0) {
    *rv = CKR_SESSION_HANDLE_INVALID;
    return true;
  }
  for (Rule& rule : state.rules) {
    if (rule.function != function) continue;
    const long index = rule.seen++;
    if (index < rule.skip) continue;
    if (rule.count >= 0 && rule.fired >= rule.count) continue;
    ++rule.fired;
    ++state.fired;
    if (rule.rewrite_attribute) {
      *rewrite = true;
      *attribute = rule.attribute;
      return false;
    }
    if (rule.kill) state.dead_sessions = state.open_sessions;
    *rv = rule.rv;
    return true;
  }
  return false;
}

template <auto Member, size_t Index, bool HasSession,
          typename F = std::remove_reference_t<decltype(std::declval<CK_FUNCTION_LIST&>().*Member)>>
struct Forwarder;

template <auto Member, size_t Index, bool HasSession, typename... Args>
struct Forwarder<Member, Index, HasSession, CK_RV (*)(Args...)> {
  static const char* name;
  static CK_RV Call(Args... args) {
    CK_SESSION_HANDLE session = 0;
    if constexpr (HasSession) session = std::get<0>(std::forward_as_tuple(args...));
    CK_RV rv = CKR_OK;
    bool rewrite = false;
    CK_ATTRIBUTE_TYPE attribute = 0;
    if (ShouldFail(name, HasSession, session, &rv, &rewrite, &attribute)) return rv;
    return (g_real->*Member)(args...);
  }
};
template <auto Member, size_t Index, bool HasSession, typename... Args>
const char* Forwarder<Member, Index, HasSession, CK_RV (*)(Args...)>::name = nullptr;

enum FunctionIndex : size_t {
#define HOSN_FAULT_ENUM(fn, session) k##fn,
  HOSN_FAULT_FUNCTIONS(HOSN_FAULT_ENUM)
#undef HOSN_FAULT_ENUM
};

// Calls that need more than forwarding.
CK_RV OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, void* app, CK_NOTIFY notify,
                  CK_SESSION_HANDLE* session) {
  CK_RV rv = CKR_OK;
  bool rewrite = false;
  CK_ATTRIBUTE_TYPE attribute = 0;
  if (ShouldFail("C_OpenSession", false, 0, &rv, &rewrite, &attribute)) return rv;
  rv = g_real->C_OpenSession(slot, flags, app, notify, session);
  if (rv == CKR_OK) {
    State& state = GetState();
    std::lock_guard<std::mutex> lock(state.mu);
    state.open_sessions.insert(*session);
    state.dead_sessions.erase(*session);
  }
  return rv;
}

CK_RV CloseSession(CK_SESSION_HANDLE session) {
  CK_RV rv = CKR_OK;
  bool rewrite = false;
  CK_ATTRIBUTE_TYPE attribute = 0;
  if (ShouldFail("C_CloseSession", true, session, &rv, &rewrite, &attribute)) return rv;
  rv = g_real->C_CloseSession(session);
  State& state = GetState();
  std::lock_guard<std::mutex> lock(state.mu);
  state.open_sessions.erase(session);
  state.dead_sessions.erase(session);
  return rv;
}

CK_RV CloseAllSessions(CK_SLOT_ID slot) {
  CK_RV rv = CKR_OK;
  bool rewrite = false;
  CK_ATTRIBUTE_TYPE attribute = 0;
  if (ShouldFail("C_CloseAllSessions", false, 0, &rv, &rewrite, &attribute)) return rv;
  rv = g_real->C_CloseAllSessions(slot);
  State& state = GetState();
  std::lock_guard<std::mutex> lock(state.mu);
  state.open_sessions.clear();
  state.dead_sessions.clear();
  return rv;
}

CK_RV Finalize(void* reserved) {
  CK_RV rv = CKR_OK;
  bool rewrite = false;
  CK_ATTRIBUTE_TYPE attribute = 0;
  if (ShouldFail("C_Finalize", false, 0, &rv, &rewrite, &attribute)) return rv;
  rv = g_real->C_Finalize(reserved);
  State& state = GetState();
  std::lock_guard<std::mutex> lock(state.mu);
  state.open_sessions.clear();
  state.dead_sessions.clear();
  return rv;
}

CK_RV GetAttributeValue(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
                        CK_ATTRIBUTE* attributes, CK_ULONG count) {
  CK_RV rv = CKR_OK;
  bool rewrite = false;
  CK_ATTRIBUTE_TYPE attribute = 0;
  if (ShouldFail("C_GetAttributeValue", true, session, &rv, &rewrite, &attribute)) return rv;
  rv = g_real->C_GetAttributeValue(session, object, attributes, count);
  if (rewrite) {
    for (CK_ULONG i = 0; i < count; ++i) {
      if (attributes[i].type == attribute) {
        attributes[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
        rv = CKR_OK;
      }
    }
  }
  return rv;
}

void TrackNewKey(CK_RV rv, CK_OBJECT_HANDLE* key) {
  if (rv != CKR_OK || key == nullptr) return;
  State& state = GetState();
  std::lock_guard<std::mutex> lock(state.mu);
  state.live_keys.insert(*key);
}

CK_RV UnwrapKey(CK_SESSION_HANDLE session, CK_MECHANISM* mechanism, CK_OBJECT_HANDLE unwrapping_key,
                CK_BYTE* wrapped, CK_ULONG wrapped_length, CK_ATTRIBUTE* attributes, CK_ULONG count,
                CK_OBJECT_HANDLE* key) {
  CK_RV rv = CKR_OK;
  bool rewrite = false;
  CK_ATTRIBUTE_TYPE attribute = 0;
  if (ShouldFail("C_UnwrapKey", true, session, &rv, &rewrite, &attribute)) return rv;
  rv = g_real->C_UnwrapKey(session, mechanism, unwrapping_key, wrapped, wrapped_length, attributes,
                           count, key);
  TrackNewKey(rv, key);
  return rv;
}

CK_RV DeriveKey(CK_SESSION_HANDLE session, CK_MECHANISM* mechanism, CK_OBJECT_HANDLE base_key,
                CK_ATTRIBUTE* attributes, CK_ULONG count, CK_OBJECT_HANDLE* key) {
  CK_RV rv = CKR_OK;
  bool rewrite = false;
  CK_ATTRIBUTE_TYPE attribute = 0;
  if (ShouldFail("C_DeriveKey", true, session, &rv, &rewrite, &attribute)) return rv;
  rv = g_real->C_DeriveKey(session, mechanism, base_key, attributes, count, key);
  TrackNewKey(rv, key);
  return rv;
}

CK_RV DestroyObject(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object) {
  CK_RV rv = CKR_OK;
  bool rewrite = false;
  CK_ATTRIBUTE_TYPE attribute = 0;
  if (ShouldFail("C_DestroyObject", true, session, &rv, &rewrite, &attribute)) return rv;
  rv = g_real->C_DestroyObject(session, object);
  if (rv == CKR_OK) {
    State& state = GetState();
    std::lock_guard<std::mutex> lock(state.mu);
    state.live_keys.erase(object);
  }
  return rv;
}

CK_RV GetFunctionList(CK_FUNCTION_LIST** list);

bool Load() {
  if (g_real != nullptr) return true;
  const char* target = std::getenv("HOSN_FAULT_PKCS11_TARGET");
  if (target == nullptr || *target == '\0') target = "/usr/lib/softhsm/libsofthsm2.so";
  void* library = ::dlopen(target, RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) return false;
  auto get = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(library, "C_GetFunctionList"));
  if (get == nullptr || get(&g_real) != CKR_OK || g_real == nullptr) return false;

  g_list.version = g_real->version;
#define HOSN_FAULT_FILL(fn, session)                            \
  Forwarder<&CK_FUNCTION_LIST::fn, k##fn, session>::name = #fn; \
  g_list.fn = &Forwarder<&CK_FUNCTION_LIST::fn, k##fn, session>::Call;
  HOSN_FAULT_FUNCTIONS(HOSN_FAULT_FILL)
#undef HOSN_FAULT_FILL
  g_list.C_GetFunctionList = &GetFunctionList;
  g_list.C_OpenSession = &OpenSession;
  g_list.C_CloseSession = &CloseSession;
  g_list.C_CloseAllSessions = &CloseAllSessions;
  g_list.C_Finalize = &Finalize;
  g_list.C_GetAttributeValue = &GetAttributeValue;
  g_list.C_UnwrapKey = &UnwrapKey;
  g_list.C_DeriveKey = &DeriveKey;
  g_list.C_DestroyObject = &DestroyObject;

  if (const char* spec = std::getenv("HOSN_FAULT_PKCS11_SPEC")) {
    hosn_fault_pkcs11_configure(spec);
  }
  return true;
}

CK_RV GetFunctionList(CK_FUNCTION_LIST** list) {
  static std::once_flag once;
  static bool loaded = false;
  std::call_once(once, [] { loaded = Load(); });
  if (!loaded) return CKR_GENERAL_ERROR;
  if (list == nullptr) return CKR_ARGUMENTS_BAD;
  *list = &g_list;
  return CKR_OK;
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) CK_RV C_GetFunctionList(CK_FUNCTION_LIST** list) {
  return GetFunctionList(list);
}

__attribute__((visibility("default"))) int hosn_fault_pkcs11_configure(const char* spec) {
  std::vector<Rule> rules;
  const bool ok = spec != nullptr && ParseSpec(spec, &rules);
  State& state = GetState();
  std::lock_guard<std::mutex> lock(state.mu);
  state.rules = ok ? rules : std::vector<Rule>();
  state.fired = 0;
  state.live_keys.clear();
  return ok ? 0 : -1;
}

__attribute__((visibility("default"))) long hosn_fault_pkcs11_fired(void) {
  State& state = GetState();
  std::lock_guard<std::mutex> lock(state.mu);
  return state.fired;
}

__attribute__((visibility("default"))) long hosn_fault_pkcs11_live_keys(void) {
  State& state = GetState();
  std::lock_guard<std::mutex> lock(state.mu);
  return static_cast<long>(state.live_keys.size());
}

}  // extern "C"
