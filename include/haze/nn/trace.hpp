#pragma once
// A record of what a model's modules compute, in order: each module's
// output as the forward pass runs, and each module's input gradient as the
// backward pass runs, under diffusers' module names. Recording is off
// unless a TraceScope is open on the calling thread (verify::against_cpu
// opens one), and then it copies each tensor to the host: a tool for
// finding the layer where two backends part, not for training.

#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "haze/core/tensor.hpp"

namespace haze::nn {

struct TraceEntry {
  std::string name;
  std::vector<double> values;
};

struct Trace {
  std::vector<TraceEntry> outputs;         // forward order
  std::vector<TraceEntry> input_grads;     // backward order
};

// The trace being recorded on this thread, or null.
inline Trace*& active_trace() {
  thread_local Trace* trace = nullptr;
  return trace;
}

class TraceScope {
 public:
  explicit TraceScope(Trace& trace) : previous_(std::exchange(active_trace(), &trace)) {}
  ~TraceScope() { active_trace() = previous_; }
  TraceScope(const TraceScope&) = delete;
  TraceScope& operator=(const TraceScope&) = delete;

 private:
  Trace* previous_;
};

namespace detail {
// name: a string, or a callable that builds one (only while tracing).
template <class Name, Real T, Backend B>
void record(std::vector<TraceEntry> Trace::*list, const Name& name, const Tensor<T, B>& t) {
  Trace* trace = active_trace();
  if (!trace) return;
  const std::vector<T> host = t.to_host();
  std::string label;
  if constexpr (std::is_invocable_v<const Name&>)
    label = name();
  else
    label = name;
  (trace->*list).push_back({std::move(label), std::vector<double>(host.begin(), host.end())});
}
}  // namespace detail

template <class Name, Real T, Backend B>
void trace_output(const Name& name, const Tensor<T, B>& t) {
  detail::record(&Trace::outputs, name, t);
}

template <class Name, Real T, Backend B>
void trace_input_grad(const Name& name, const Tensor<T, B>& t) {
  detail::record(&Trace::input_grads, name, t);
}

}  // namespace haze::nn
