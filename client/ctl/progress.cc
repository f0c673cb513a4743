#include "client/ctl/progress.h"

#include <unistd.h>

#include <algorithm>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace hosn::ctl {
namespace {

double NowSeconds() { return absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()); }

}  // namespace

ProgressReporter::ProgressReporter(std::string label, const bundle::Progress* progress, FILE* out)
    : label_(std::move(label)),
      progress_(progress),
      out_(out),
      tty_(::isatty(::fileno(out)) == 1),
      start_(NowSeconds()),
      thread_([this] { Run(); }) {}

ProgressReporter::~ProgressReporter() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
  Print(true);
}

void ProgressReporter::Run() {
  const absl::Duration period = tty_ ? absl::Milliseconds(100) : absl::Seconds(5);
  absl::MutexLock lock(&mu_);
  while (!mu_.AwaitWithTimeout(absl::Condition(&stop_), period)) {
    mu_.Unlock();
    Print(false);
    mu_.Lock();
  }
}

void ProgressReporter::Print(bool final) {
  double done = static_cast<double>(progress_->done.load());
  double total = static_cast<double>(progress_->total.load());
  double fraction = total > 0 ? std::min(1.0, done / total) : (final ? 1.0 : 0.0);
  double elapsed = std::max(1e-6, NowSeconds() - start_);
  double rate = done / elapsed / 1e6;
  if (tty_) {
    constexpr int kWidth = 30;
    int filled = static_cast<int>(fraction * kWidth);
    std::string bar(filled, '#');
    bar.append(kWidth - filled, '.');
    std::fprintf(out_, "\r%s [%s] %5.1f%%  %.0f/%.0f MB  %.0f MB/s", label_.c_str(), bar.c_str(),
                 fraction * 100, done / 1e6, total / 1e6, rate);
    if (final) std::fprintf(out_, "\n");
  } else {
    std::fprintf(out_, "%s: %.1f%% (%.0f of %.0f MB, %.0f MB/s)\n", label_.c_str(), fraction * 100,
                 done / 1e6, total / 1e6, rate);
  }
  std::fflush(out_);
}

}  // namespace hosn::ctl
