// ProgressReporter: shows a bundle::Progress on stderr while an operation
// runs. On a terminal it redraws one bar line ten times a second; otherwise
// it prints a plain line every five seconds, so logs stay readable.
//
// Owns one thread, started by the constructor and joined by the destructor
// (which prints the final state). The Progress must outlive the reporter.
#ifndef HOSN_CLIENT_CTL_PROGRESS_H_
#define HOSN_CLIENT_CTL_PROGRESS_H_

#include <cstdio>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "common/bundle/bundle.h"

namespace hosn::ctl {

class ProgressReporter {
 public:
  ProgressReporter(std::string label, const bundle::Progress* progress, FILE* out = stderr);
  ~ProgressReporter();
  ProgressReporter(const ProgressReporter&) = delete;
  ProgressReporter& operator=(const ProgressReporter&) = delete;

 private:
  void Run();
  void Print(bool final);

  const std::string label_;
  const bundle::Progress* const progress_;
  FILE* const out_;
  const bool tty_;
  const double start_;
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace hosn::ctl

#endif  // HOSN_CLIENT_CTL_PROGRESS_H_
