#pragma once
// Trainer: the denoising training loop. One step() is one optimizer update
// over M = ranks x accumulation micro-batches of batch_size items each, the
// step's items being the next M x batch_size of the data order:
//
//   for each of this rank's micro-batches g (rank r takes g = r A .. r A + A - 1):
//     x0, labels <- items [g b, (g + 1) b) of the step's   (labels -> null class with p = label_dropout)
//     t ~ U{0 .. T-1},  eps ~ N(0, I)               (host draws and randn from micro-batch g's Generator)
//     x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps
//     loss = w mse(model(x_t, t, labels), target_P(x0, eps)) / M
//     model.backward(dloss); gradient sum += its gradients   (in micro-batch order)
//   the ranks' sums added in rank order (Communicator::sum_in_rank_order)
//   clip the global gradient norm, AdamW step at lr(step), EMA update
//                                                  (one pass over the parameter arena)
//
// Micro-batch g's randomness comes from a Generator keyed by (seed, step, g)
// alone, and its gradients are added to the others' one whole micro-batch at
// a time, so N ranks with accumulation 1 compute the bits one rank computes
// with accumulation N: the same draws, the same sums in the same order.
//
// A NaN or infinite loss or gradient norm, or an update that would make a
// parameter NaN or infinite (AdamW checks), throws haze::Error naming the
// step, and no parameter changes, so the last good state (and checkpoint)
// stays good. The checks wait on nothing: the losses, the norm, the
// clipping factor and the verdicts stay in one backend buffer that the
// update itself consults, read back once when the step's work is queued
// (a step's only host round trip on a GPU, on one rank). Everything random
// comes from the seed, the step and the BatchOrder, whose state a checkpoint
// saves: a resumed run repeats a straight run bit for bit.
//
// Model: forward(x, timesteps, labels, Generator*), backward(dy),
// parameters(out, prefix), value_type, backend_type (nn::UNet is one).

#include <bit>
#include <chrono>
#include <cmath>
#include <functional>
#include <optional>
#include <vector>

#include "haze/core/generator.hpp"
#include "haze/diffusion/forward_process.hpp"
#include "haze/diffusion/loss.hpp"
#include "haze/diffusion/parameterization.hpp"
#include "haze/nn/module.hpp"
#include "haze/ops/reduce.hpp"
#include "haze/ops/random.hpp"
#include "haze/train/adamw.hpp"
#include "haze/train/communicator.hpp"
#include "haze/train/dataset.hpp"
#include "haze/train/ema.hpp"
#include "haze/train/lr_schedule.hpp"

namespace haze::train {

struct TrainerOptions {
  int64_t batch_size = 64;
  int accumulation = 1;            // micro-batches per optimizer step
  LrSchedule lr{};
  AdamWOptions adamw{};
  double ema_decay = 0.9999;       // max decay of the EMA
  double clip_norm = 1.0;          // global gradient norm cap; 0 turns clipping off
  double min_snr_gamma = 0;        // > 0: Min-SNR-gamma loss weights
  int64_t num_classes = 0;         // > 0: class-conditional, labels from the data, null class = num_classes
  double label_dropout = 0.1;      // probability of the null class (classifier-free guidance)
  uint64_t seed = 0;
  // With several ranks: true sums their gradients in rank order (N ranks
  // give one rank's bits with accumulation N); false takes the transport's
  // own all-reduce (Communicator::sum_any_order), which gives up that.
  bool deterministic_sum = true;

  void validate() const {
    HAZE_REQUIRE(batch_size > 0, "TrainerOptions: batch_size must be > 0, got ", batch_size);
    HAZE_REQUIRE(accumulation >= 1, "TrainerOptions: accumulation must be >= 1, got ", accumulation);
    HAZE_REQUIRE(clip_norm >= 0, "TrainerOptions: clip_norm must be >= 0, got ", clip_norm);
    HAZE_REQUIRE(min_snr_gamma >= 0, "TrainerOptions: min_snr_gamma must be >= 0, got ", min_snr_gamma);
    HAZE_REQUIRE(num_classes >= 0, "TrainerOptions: num_classes must be >= 0, got ", num_classes);
    HAZE_REQUIRE(label_dropout >= 0 && label_dropout <= 1, "TrainerOptions: label_dropout must be in [0, 1], got ",
                 label_dropout);
    lr.validate();
  }
};

struct StepReport {
  int64_t step;        // optimizer steps taken so far
  double loss;         // mean over the micro-batches
  double grad_norm;    // before clipping
  double lr;
  double seconds;      // wall time of this step
  int64_t items;       // training items seen in this step
};

namespace detail {
// The slots of a step's status buffer; the micro-batches' losses follow.
enum StatusSlot : int64_t { squares, norm, clip_scale, blocked, nonfinite, losses };

// Micro-batch g of step `step`: a Philox key of its own, drawn from the
// seed's stream at block (step, g).
inline Generator micro_batch_generator(uint64_t seed, int64_t step, int64_t g) {
  const philox::Block bits = philox::philox4x32_10(
      philox::counter_of((static_cast<uint64_t>(step) << 20) | static_cast<uint64_t>(g)),
      philox::key_of(seed ^ 0x6d6963726f626174ULL));
  return Generator{static_cast<uint64_t>(bits.v[0]) | (static_cast<uint64_t>(bits.v[1]) << 32), 0};
}

// After the backward pass: the gradient norm from its sum of squares, the
// clipping factor (rounded to T, as clipping the gradients would apply it),
// and whether the step must write nothing (a loss or the norm not finite).
template <class T>
struct ClipAndGate {
  double* status;
  int accumulation;
  double clip_norm;  // 0: no clipping
  HAZE_HD void operator()(int64_t) const {
    bool losses_finite = true;
    for (int m = 0; m < accumulation; ++m) losses_finite = losses_finite && is_finite(status[losses + m]);
    const double n = std::sqrt(status[squares]);
    status[norm] = n;
    status[clip_scale] = clip_norm > 0 && is_finite(n) && n > clip_norm ? double(T(clip_norm / n)) : 1.0;
    status[blocked] = losses_finite && is_finite(n) ? 0.0 : 1.0;
  }
  HAZE_HD static bool is_finite(double v) { return v - v == 0.0; }
};

template <class T>
struct AddInto {  // sum[i] = sum[i] + part[i]
  T* sum;
  const T* part;
  HAZE_HD void operator()(int64_t i) const { sum[i] = sum[i] + part[i]; }
};
}  // namespace detail

template <class Model, Prediction P>
class Trainer {
 public:
  using T = typename Model::value_type;
  using B = typename Model::backend_type;

  // With a Communicator of N ranks, every rank builds its Trainer alike
  // (same options, data and seed); rank 0's state is copied to the others
  // here (share_state), and each step sums the ranks' gradients.
  Trainer(Model& model, Schedule schedule, const Dataset& data, TrainerOptions options,
          Communicator& communicator = single_rank())
      : model_(model),
        process_(std::move(schedule)),
        data_(data),
        options_((options.validate(), options)),
        comm_(communicator),
        params_(nn::parameters_of(model)),
        optimizer_(params_, options_.adamw),
        ema_(params_, options_.ema_decay),
        order_((data.validate(), data.count()), options_.seed ^ 0x9e3779b97f4a7c15ULL),
        gen_{options_.seed},
        status_(Tensor<double, B>::zeros({detail::losses + options_.accumulation})) {
    HAZE_REQUIRE(options_.num_classes == 0 || !data.labels.empty(),
                 "Trainer: num_classes is ", options_.num_classes, " but the dataset has no labels");
    for (int64_t label : data.labels)
      HAZE_REQUIRE(options_.num_classes == 0 || (label >= 0 && label < options_.num_classes), "Trainer: label ", label,
                   " outside [0, ", options_.num_classes, ")");
    share_state();
  }

  // The trainer reads `data` at every step: it must outlive the trainer, so a
  // temporary is refused at compile time.
  Trainer(Model&, Schedule, const Dataset&&, TrainerOptions, Communicator& = single_rank()) = delete;

  // Makes every rank's training state rank 0's: the parameters, both
  // moments, the average, the step count, the generator and the place in
  // the data order. The constructor calls it, and io::load_checkpoint does
  // after a resume, so every rank continues from rank 0's file even where
  // another rank read an older copy. A collective: every rank calls it.
  void share_state() {
    if (comm_.size() == 1) return;
    const nn::ParameterArena<T, B>& arena = optimizer_.arena();
    broadcast_from_rank0(arena.values("Trainer::share_state"), arena.size());
    for (Tensor<T, B>* t : {&optimizer_.first_moments(), &optimizer_.second_moments(), &ema_.shadows()})
      broadcast_from_rank0(t->data(), t->numel());
    // The counters as bit patterns (a broadcast copies bytes; 64-bit values
    // survive it whole, where a double would round them).
    const uint64_t mine[] = {uint64_t(order_.count()), uint64_t(optimizer_.steps_taken()), gen_.seed, gen_.offset,
                             order_.seed(), uint64_t(order_.epoch()), uint64_t(order_.position())};
    Tensor<double, B> counters({int64_t(std::size(mine))});
    std::vector<double> bits(std::size(mine));
    for (size_t i = 0; i < bits.size(); ++i) bits[i] = std::bit_cast<double>(mine[i]);
    B::copy_from_host(counters.data(), bits.data(), counters.numel());
    broadcast_from_rank0(counters.data(), counters.numel());
    B::copy_to_host(bits.data(), counters.data(), counters.numel());
    uint64_t root[std::size(mine)];
    for (size_t i = 0; i < bits.size(); ++i) root[i] = std::bit_cast<uint64_t>(bits[i]);
    HAZE_REQUIRE(int64_t(root[0]) == order_.count(), "Trainer: rank ", comm_.rank(), " has ", order_.count(),
                 " training items but rank 0 has ", int64_t(root[0]), " (every rank must load the same data)");
    optimizer_.set_steps_taken(int64_t(root[1]));
    gen_ = Generator{root[2], root[3]};
    BatchOrder order(order_.count(), root[4]);
    order.seek(int64_t(root[5]), int64_t(root[6]));
    order_ = std::move(order);
  }

  StepReport step() {
    const auto start = std::chrono::steady_clock::now();
    const int64_t n = options_.batch_size;
    const int64_t next_step = optimizer_.steps_taken() + 1;
    const int accumulation = options_.accumulation;
    const int64_t micros = int64_t(comm_.size()) * accumulation;  // the step's micro-batches, all ranks
    const nn::ParameterArena<T, B>& arena = optimizer_.arena();
    T* grads = arena.grads("Trainer::step");
    double* status = status_.data();
    const std::vector<int64_t> items = order_.next(micros * n);  // every rank advances the order alike
    for (int micro = 0; micro < accumulation; ++micro) {
      ensure_buffers(n);
      const int64_t g = int64_t(comm_.rank()) * accumulation + micro;
      Generator gen = detail::micro_batch_generator(gen_.seed, next_step, g);
      const std::vector<int64_t> indices(items.begin() + g * n, items.begin() + (g + 1) * n);
      data_.gather(indices, *x0_, labels_);
      std::vector<int> ts(static_cast<size_t>(n));
      std::vector<double> t_model(ts.size());
      for (size_t i = 0; i < ts.size(); ++i) {
        ts[i] = static_cast<int>(next_below(gen, process_.schedule().steps()));
        t_model[i] = ts[i];
      }
      if (options_.num_classes > 0) {
        for (auto& label : labels_)
          if (next_uniform(gen) < options_.label_dropout) label = options_.num_classes;
      } else {
        labels_.clear();
      }
      randn(*eps_, gen);
      process_.marginal(*x0_, ts, *eps_, *x_t_);
      target_from(ts);
      std::vector<double> weights = options_.min_snr_gamma > 0
                                        ? min_snr_weights<P>(process_.schedule(), ts, options_.min_snr_gamma)
                                        : std::vector<double>(ts.size(), 1.0);
      for (double& w : weights) w /= double(micros);
      arena.zero_grads();  // this micro-batch's gradients alone, then added to the sum whole
      const Tensor<T, B> pred = model_.forward(*x_t_, t_model, labels_, &gen);
      mse_loss_to(pred, *target_, weights, *grad_, status + detail::losses + micro);
      model_.backward(*grad_);
      // sum = g_0, sum += g_m, and the last one added into the arena itself
      // (a + b is b + a to the bit, so the order of the sum is the same)
      if (accumulation > 1) {
        T* sum = gradient_sum().data();
        if (micro == 0) B::copy(sum, grads, arena.size());
        else if (micro + 1 < accumulation) B::for_each_index(arena.size(), detail::AddInto<T>{sum, grads});
        else B::for_each_index(arena.size(), detail::AddInto<T>{grads, sum});
      }
    }
    if (comm_.size() > 1) sum_across_ranks(arena);
    B::sum_axes(grads, 1, 1, arena.size(), ops::Square{}, 0.0, status + detail::squares);
    B::for_each_index(1, detail::ClipAndGate<T>{status, accumulation, options_.clip_norm});
    const double lr = options_.lr.at(next_step);
    optimizer_.enqueue_step(lr, {.nonfinite = status + detail::nonfinite,
                                 .grad_scale = status + detail::clip_scale,
                                 .blocked = status + detail::blocked,
                                 .average = &ema_,
                                 .average_step = next_step});

    const std::vector<double> done = status_.to_host();  // the step's one round trip
    double loss = 0;
    for (int micro = 0; micro < options_.accumulation; ++micro) {
      const double micro_loss = done[size_t(detail::losses + micro)];
      HAZE_REQUIRE(std::isfinite(micro_loss), "Trainer: the loss is ", micro_loss, " at step ", next_step,
                   " (micro-batch ", micro, "); no parameter was changed");
      loss += micro_loss;
    }
    const double norm = done[detail::norm];
    HAZE_REQUIRE(std::isfinite(norm), "Trainer: the gradient norm is ", norm, " at step ", next_step,
                 "; no parameter was changed");
    optimizer_.finish_step(lr, done[detail::nonfinite]);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return {optimizer_.steps_taken(), loss, norm, lr, seconds, n * micros};
  }

  // Steps until `until` optimizer steps are taken or on_step returns false.
  void run(int64_t until, const std::function<bool(const StepReport&)>& on_step) {
    while (optimizer_.steps_taken() < until)
      if (!on_step(step())) break;
  }

  int64_t steps_taken() const { return optimizer_.steps_taken(); }
  const TrainerOptions& options() const { return options_; }
  const Schedule& schedule() const { return process_.schedule(); }
  const nn::Parameters<T, B>& parameters() const { return params_; }
  AdamW<T, B>& optimizer() { return optimizer_; }
  Ema<T, B>& ema() { return ema_; }
  BatchOrder& order() { return order_; }
  Generator& generator() { return gen_; }
  Communicator& communicator() { return comm_; }

 private:
  static Communicator& single_rank() {
    static SingleRank one;
    return one;
  }

  // data[0, n) <- rank 0's, in place on a transport of device memory, else
  // through host memory.
  template <class V>
  void broadcast_from_rank0(V* data, int64_t n) {
    if (n == 0) return;
    if (comm_.device_memory()) return comm_.broadcast(std::span<V>(data, size_t(n)), 0);
    std::vector<V> host(static_cast<size_t>(n));
    B::copy_to_host(host.data(), data, n);
    comm_.broadcast(std::span<V>(host), 0);
    B::copy_from_host(data, host.data(), n);
  }

  // The ranks' gradients and per-micro-batch losses, each summed in rank
  // order, or in the transport's (deterministic_sum false): in place on a
  // transport of device memory (NCCL), else through host memory.
  void sum_across_ranks(const nn::ParameterArena<T, B>& arena) {
    const auto sum = [&](auto values) {
      if (options_.deterministic_sum) comm_.sum_in_rank_order(values);
      else comm_.sum_any_order(values);
    };
    if (comm_.device_memory()) {
      sum(std::span<T>(arena.grads("Trainer::step"), size_t(arena.size())));
      sum(std::span<double>(status_.data() + detail::losses, size_t(options_.accumulation)));
      return;
    }
    std::vector<T>& host = host_grads_;  // kept: a fresh arena-sized buffer each step costs page faults
    host.resize(size_t(arena.size()));
    B::copy_to_host(host.data(), arena.grads("Trainer::step"), arena.size());
    sum(std::span<T>(host));
    B::copy_from_host(arena.grads("Trainer::step"), host.data(), arena.size());
    std::vector<double> losses(size_t(options_.accumulation));
    B::copy_to_host(losses.data(), status_.data() + detail::losses, int64_t(losses.size()));
    sum(std::span<double>(losses));
    B::copy_from_host(status_.data() + detail::losses, losses.data(), int64_t(losses.size()));
  }

  Tensor<T, B>& gradient_sum() {
    if (gradient_sum_.empty()) gradient_sum_ = Tensor<T, B>({optimizer_.arena().size()});
    return gradient_sum_;
  }

  void ensure_buffers(int64_t n) {
    if (x0_) return;
    const Shape shape = data_.batch_shape(n);
    x0_.emplace(shape);
    eps_.emplace(shape);
    x_t_.emplace(shape);
    target_.emplace(shape);
    grad_.emplace(shape);
  }

  // target = a x0 + b eps with the parameterization's per-sample coefficients.
  void target_from(const std::vector<int>& ts) {
    std::vector<double> a(ts.size()), b(ts.size());
    for (size_t i = 0; i < ts.size(); ++i) {
      const auto c = P::target(process_.schedule().alpha_bar(ts[i]));
      a[i] = c.first;
      b[i] = c.second;
    }
    ops::lincomb_per_sample(*target_, a, *x0_, b, *eps_);
  }

  Model& model_;
  ForwardProcess<T, B> process_;
  const Dataset& data_;
  TrainerOptions options_;
  Communicator& comm_;
  nn::Parameters<T, B> params_;
  AdamW<T, B> optimizer_;
  Ema<T, B> ema_;
  BatchOrder order_;
  Generator gen_;
  std::vector<int64_t> labels_;
  Tensor<double, B> status_;  // detail::StatusSlot
  std::optional<Tensor<T, B>> x0_, eps_, x_t_, target_, grad_;
  Tensor<T, B> gradient_sum_;  // accumulation > 1: the micro-batches' gradients so far
  std::vector<T> host_grads_;  // several ranks on a host transport: the gradients on their way
};

}  // namespace haze::train
