#pragma once
// UNet: diffusers' UNet2DModel (DDPM's architecture), parameter names
// included. With C = block_out_channels and L = layers_per_block:
//
//   temb = time_embedding(proj(t))  [+ class_embedding(label)]   [N, 4 C[0]]
//     proj: the sinusoid of width C[0], or Fourier features of ln t (fourier_time);
//     class_embedding: a table row, time-embedding-like MLP of proj(label)
//     (class_embed_type timestep), or the caller's class vector (identity)
//   h = conv_in(x)  (or conv_in(2 x - 1): center_input_sample); push skip
//   down level i: L x (ResBlock -> [Attention]);          push skip after each
//                 Downsample unless last;                   push skip
//   mid: ResBlock, [Attention], ResBlock   (each output / mid_block_scale_factor)
//   up level i (mirror of level L-1-i): (L + 1) x (concat(h, pop skip) -> ResBlock -> [Attention]);
//                 Upsample unless last
//   y = conv_out(SiLU(conv_norm_out(h)))     (/ t with fourier_time)
//
// backward is the same walk in reverse, written out below: each up-block
// ResBlock's input gradient is split into the part for h and the part for
// its skip; skip gradients wait in `dskips` until the down path reaches the
// tensor that produced them; every ResBlock's time-embedding gradient is
// summed into dtemb, which finally goes through the embeddings.
// Memory held between forward and backward: each layer's handle on its own
// input (the skips are among them, held once) and the concatenated up-block
// inputs.

#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "haze/nn/activation.hpp"
#include "haze/nn/attention.hpp"
#include "haze/nn/class_embedding.hpp"
#include "haze/nn/conv2d.hpp"
#include "haze/nn/fourier_projection.hpp"
#include "haze/nn/group_norm.hpp"
#include "haze/nn/res_block.hpp"
#include "haze/nn/resample.hpp"
#include "haze/nn/timestep_embedding.hpp"
#include "haze/nn/trace.hpp"
#include "haze/nn/unet_config.hpp"
#include "haze/ops/combine.hpp"
#include "haze/ops/layout.hpp"

namespace haze::nn {

namespace detail {
struct CenterSample {  // diffusers' center_input_sample: 2 * sample - 1.0
  template <class T>
  HAZE_HD T operator()(T v) const { return T(2) * v - T(1); }
};
}  // namespace detail

template <Real T, Backend B>
class UNet {
 public:
  using value_type = T;
  using backend_type = B;

  explicit UNet(UNetConfig config)
      : config_((config.validate(), std::move(config))),
        conv_in_(config_.in_channels, config_.block_out_channels[0], 3, 1, 1),
        time_embedding_(config_.time_proj_dim(), config_.time_embed_dim()),
        conv_norm_out_(config_.norm_groups, config_.block_out_channels[0], config_.norm_eps, NormActivation::silu),
        conv_out_(config_.block_out_channels[0], config_.out_channels, 3, 1, 1) {
    const auto& C = config_.block_out_channels;
    const int levels = config_.levels();
    const int64_t E = config_.time_embed_dim();
    if (config_.fourier_time) fourier_.emplace(C[0]);
    using Type = UNetConfig::ClassEmbedType;
    if (config_.class_embed_type == Type::table && config_.num_classes > 0)
      class_embedding_.emplace(config_.num_classes, E);
    if (config_.class_embed_type == Type::timestep) class_timestep_embedding_.emplace(config_.time_proj_dim(), E);
    const auto resblock = [&](int64_t in, int64_t out, double output_scale = 1) {
      return ResBlock<T, B>(in, out, E, config_.norm_groups, config_.norm_eps, config_.dropout, output_scale,
                            config_.scale_shift);
    };
    const auto attention = [&](int64_t channels) {
      return Attention<T, B>(channels, config_.head_dim(channels), config_.norm_groups, config_.norm_eps);
    };
    int64_t channels = C[0];
    for (int i = 0; i < levels; ++i) {
      Level level;
      for (int j = 0; j < config_.layers_per_block; ++j) {
        level.resnets.push_back(resblock(j == 0 ? channels : C[i], C[i]));
        if (config_.has_attention(i)) level.attentions.push_back(attention(C[i]));
      }
      if (i + 1 < levels) level.downsample.emplace(C[i], config_.downsample_padding);
      channels = C[i];
      down_.push_back(std::move(level));
    }
    const double mid_scale = config_.mid_block_scale_factor;
    mid_resnets_.push_back(resblock(C.back(), C.back(), mid_scale));
    if (config_.mid_attention)
      mid_attention_.emplace_back(C.back(), config_.head_dim(C.back()), config_.mid_attention_groups(),
                                  config_.norm_eps, mid_scale);
    mid_resnets_.push_back(resblock(C.back(), C.back(), mid_scale));
    int64_t previous = C.back();
    for (int i = 0; i < levels; ++i) {
      const int64_t out = C[levels - 1 - i], in = C[std::max(levels - 2 - i, 0)];
      Level level;
      for (int j = 0; j <= config_.layers_per_block; ++j) {
        const int64_t skip = j == config_.layers_per_block ? in : out;
        level.resnets.push_back(resblock((j == 0 ? previous : out) + skip, out));
        if (config_.has_attention(levels - 1 - i)) level.attentions.push_back(attention(out));
      }
      if (i + 1 < levels) level.upsample.emplace(out);
      previous = out;
      up_.push_back(std::move(level));
    }
  }

  const UNetConfig& config() const { return config_; }

  // x [N, in, H, W]; one timestep per sample (may be fractional); labels,
  // one per sample, when the model is class-conditional (num_classes = the
  // null class). A generator turns dropout on.
  // On a backend that splits batches (the Cpu), forward and backward run a
  // batch as `training_shares(N)` shares, one model replica each (see
  // forward_in_shares).
  Tensor<T, B> forward(const Tensor<T, B>& x, std::span<const double> timesteps, std::span<const int64_t> labels = {},
                       Generator* gen = nullptr) {
    return forward(x, timesteps, Conditioning{labels, nullptr}, gen);
  }
  // class_embed_type identity: class_vectors [N, time_embed_dim()] are the
  // class embeddings themselves; after backward, class_vectors_grad() holds
  // dL/d(class_vectors).
  Tensor<T, B> forward(const Tensor<T, B>& x, std::span<const double> timesteps, const Tensor<T, B>& class_vectors,
                       Generator* gen = nullptr) {
    return forward(x, timesteps, Conditioning{{}, &class_vectors}, gen);
  }
  const Tensor<T, B>& class_vectors_grad() const { return class_vectors_grad_; }
  // Where every element of a product has the same bits whatever the
  // product's extent (B::gemm_extent_exact(): the Cpu's packed GEMM), each
  // thread runs one share of the batch; elsewhere infer takes forward's
  // shares. Either way every image's result is forward's, as no op mixes
  // images and none depends on the thread count.
  Tensor<T, B> infer(const Tensor<T, B>& x, std::span<const double> timesteps, std::span<const int64_t> labels = {}) {
    return infer(x, timesteps, Conditioning{labels, nullptr});
  }
  Tensor<T, B> infer(const Tensor<T, B>& x, std::span<const double> timesteps, const Tensor<T, B>& class_vectors) {
    return infer(x, timesteps, Conditioning{{}, &class_vectors});
  }

  // Inference shares: the same number per thread, each of at most `chunk`
  // images, so that a share's activations stay in a core's L2 cache (4
  // images x 64 channels x 32 x 32 floats: 1 MB) instead of streaming
  // through L3 on a large batch; a thread runs its shares one after
  // another. On a 2 MB-L2 Xeon, batch 64 of the small preset went from 245
  // to 265 img/s (chunks of 8: 262; batch 16 unchanged).
  static int64_t inference_shares(int64_t n, int64_t threads) {
    constexpr int64_t chunk = 4;
    const int64_t per_thread = (n + threads - 1) / threads;
    return std::min<int64_t>(n, threads * ((per_thread + chunk - 1) / chunk));
  }

  // How many shares forward splits a batch of n into: fixed by n alone, so
  // that no sum over the batch (the weight gradients) follows the thread
  // count. Two: on two threads each share takes one (2x a one-thread step,
  // against 1.5x forking per op); on more, each share's ops split between
  // its team of threads (Cpu::in_batch_shares). More shares would repeat
  // each layer's per-call setup (packing the weights) once more per share:
  // 8 shares of a batch of 16 cost a one-thread step of the small preset
  // 30%. The second share holds its own gradient buffers.
  static int64_t training_shares(int64_t n) { return std::clamp<int64_t>(n, 1, 2); }

  Tensor<T, B> backward(const Tensor<T, B>& dy) {
    HAZE_REQUIRE(cached_, "UNet::backward called without a matching forward");
    cached_ = false;
    if constexpr (splits_batches<B>) {
      if (cached_shares_ > 1) return backward_in_shares(dy);
    }
    Tensor<T, B> dh = fourier_ ? conv_out_.backward(divided_by_timesteps(dy)) : conv_out_.backward(dy);
    trace_input_grad("conv_out", dh);
    dh = conv_norm_out_.backward(dh);
    trace_input_grad("conv_norm_out", dh);
    Tensor<T, B> dtemb = Tensor<T, B>::zeros({dh.dim(0), config_.time_embed_dim()});
    std::vector<Tensor<T, B>> dskips(skip_channels_.size());

    // Up path, last level first; every ResBlock input is concat(h, skip).
    for (int i = config_.levels() - 1; i >= 0; --i) {
      Level& level = up_[i];
      const auto name = block_names("up_blocks", i);
      if (level.upsample) {
        dh = level.upsample->backward(dh);
        trace_input_grad(name("upsamplers", 0), dh);
      }
      for (int j = config_.layers_per_block; j >= 0; --j) {
        if (!level.attentions.empty()) {
          dh = level.attentions[j].backward(dh);
          trace_input_grad(name("attentions", j), dh);
        }
        const Tensor<T, B> dcat = level.resnets[j].backward(dh);
        trace_input_grad(name("resnets", j), dcat);
        ops::axpy(T(1), level.resnets[j].backward_temb(), dtemb);
        const int64_t skip_c = skip_channels_[up_skip_index(i, j)], h_c = dcat.dim(1) - skip_c;
        dh = Tensor<T, B>({dcat.dim(0), h_c, dcat.dim(2), dcat.dim(3)});
        ops::split_channels(dcat, 0, dh);
        Tensor<T, B> ds({dcat.dim(0), skip_c, dcat.dim(2), dcat.dim(3)});
        ops::split_channels(dcat, h_c, ds);
        dskips[up_skip_index(i, j)] = std::move(ds);
      }
    }

    // Middle.
    dh = mid_resnets_[1].backward(dh);
    trace_input_grad("mid_block.resnets.1", dh);
    ops::axpy(T(1), mid_resnets_[1].backward_temb(), dtemb);
    if (!mid_attention_.empty()) {
      dh = mid_attention_[0].backward(dh);
      trace_input_grad("mid_block.attentions.0", dh);
    }
    dh = mid_resnets_[0].backward(dh);
    trace_input_grad("mid_block.resnets.0", dh);
    ops::axpy(T(1), mid_resnets_[0].backward_temb(), dtemb);

    // Down path, last level first: where a tensor was pushed as a skip, its
    // gradient is the sum of what the down path and the skip brought back.
    size_t index = skip_channels_.size();
    for (int i = config_.levels() - 1; i >= 0; --i) {
      Level& level = down_[i];
      const auto name = block_names("down_blocks", i);
      if (level.downsample) {
        ops::axpy(T(1), dskips[--index], dh);
        dh = level.downsample->backward(dh);
        trace_input_grad(name("downsamplers", 0), dh);
      }
      for (int j = config_.layers_per_block - 1; j >= 0; --j) {
        ops::axpy(T(1), dskips[--index], dh);
        if (!level.attentions.empty()) {
          dh = level.attentions[j].backward(dh);
          trace_input_grad(name("attentions", j), dh);
        }
        dh = level.resnets[j].backward(dh);
        trace_input_grad(name("resnets", j), dh);
        ops::axpy(T(1), level.resnets[j].backward_temb(), dtemb);
      }
    }
    ops::axpy(T(1), dskips[--index], dh);  // conv_in's output was the first skip
    Tensor<T, B> dx = conv_in_.backward(dh);
    if (config_.center_input_sample) ops::scale(dx, T(2));
    trace_input_grad("conv_in", dx);
    // The embedding's input (the sinusoid) needs no gradient: what reaches
    // its output, summed over every ResBlock, is recorded instead.
    trace_input_grad("time_embedding (gradient of its output)", dtemb);

    if (class_embedding_) class_embedding_->backward(dtemb);
    if (class_timestep_embedding_) class_timestep_embedding_->backward(dtemb);
    time_embedding_.backward(dtemb);  // the projection needs no gradient
    if (config_.takes_class_vectors()) class_vectors_grad_ = std::move(dtemb);
    return dx;
  }

  void parameters(Parameters<T, B>& out, std::string_view prefix) {
    conv_in_.parameters(out, join_name(prefix, "conv_in"));
    if (fourier_) fourier_->parameters(out, join_name(prefix, "time_proj"));
    time_embedding_.parameters(out, join_name(prefix, "time_embedding"));
    if (class_embedding_) class_embedding_->parameters(out, join_name(prefix, "class_embedding"));
    if (class_timestep_embedding_) class_timestep_embedding_->parameters(out, join_name(prefix, "class_embedding"));
    for (size_t i = 0; i < down_.size(); ++i)
      down_[i].parameters(out, join_name(prefix, "down_blocks." + std::to_string(i)), "downsamplers.0");
    for (size_t j = 0; j < mid_resnets_.size(); ++j)
      mid_resnets_[j].parameters(out, join_name(prefix, "mid_block.resnets." + std::to_string(j)));
    if (!mid_attention_.empty()) mid_attention_[0].parameters(out, join_name(prefix, "mid_block.attentions.0"));
    for (size_t i = 0; i < up_.size(); ++i)
      up_[i].parameters(out, join_name(prefix, "up_blocks." + std::to_string(i)), "upsamplers.0");
    conv_norm_out_.parameters(out, join_name(prefix, "conv_norm_out"));
    conv_out_.parameters(out, join_name(prefix, "conv_out"));
  }

 private:
  // What each sample is conditioned on besides its timestep: a label, or a
  // class vector (class_embed_type identity), or nothing.
  struct Conditioning {
    std::span<const int64_t> labels;
    const Tensor<T, B>* vectors = nullptr;  // [N, time_embed_dim()]

    Conditioning part(int64_t first, int64_t last, Tensor<T, B>& vector_rows) const {
      if (!vectors) return {labels.empty() ? labels : labels.subspan(first, last - first), nullptr};
      vector_rows = vectors->slice(first * vectors->dim(1), {last - first, vectors->dim(1)});
      return {{}, &vector_rows};
    }
  };

  Tensor<T, B> forward(const Tensor<T, B>& x, std::span<const double> timesteps, Conditioning c, Generator* gen) {
    cached_shares_ = 0;
    if constexpr (splits_batches<B>) {
      // (A trace records one pass, in module order: no shares.)
      if (x.rank() == 4 && training_shares(x.dim(0)) > 1 && !active_trace())
        return forward_in_shares(x, timesteps, c, gen);
    }
    return run(x, timesteps, c, gen, true, {});
  }

  Tensor<T, B> infer(const Tensor<T, B>& x, std::span<const double> timesteps, Conditioning c) {
    if constexpr (splits_batches<B>) {
      const int64_t shares = x.rank() != 4            ? 1  // run() names the error
                             : B::gemm_extent_exact() ? inference_shares(x.dim(0), B::max_threads())
                                                    : training_shares(x.dim(0));
      if (shares > 1) return infer_in_shares(x, timesteps, c, shares);
    }
    return run(x, timesteps, c, nullptr, false, {});
  }

  struct Level {
    std::vector<ResBlock<T, B>> resnets;
    std::vector<Attention<T, B>> attentions;  // empty, or one per ResBlock
    std::optional<Downsample<T, B>> downsample;
    std::optional<Upsample<T, B>> upsample;

    void parameters(Parameters<T, B>& out, const std::string& prefix, const char* resampler) {
      for (size_t j = 0; j < attentions.size(); ++j) attentions[j].parameters(out, prefix + ".attentions." + std::to_string(j));
      for (size_t j = 0; j < resnets.size(); ++j) resnets[j].parameters(out, prefix + ".resnets." + std::to_string(j));
      if (downsample) downsample->parameters(out, prefix + "." + resampler);
      if (upsample) upsample->parameters(out, prefix + "." + resampler);
    }
  };

  // Up level i, ResBlock j pops skip number (total - 1 - (i (L + 1) + j)).
  size_t up_skip_index(int i, int j) const {
    return skip_channels_.size() - 1 - size_t(i * (config_.layers_per_block + 1) + j);
  }

  // Share s of `shares` holds images [n s / shares, n (s + 1) / shares).
  static int64_t share_begin(int64_t s, int64_t shares, int64_t n) { return n * s / shares; }

  // body(share, first, last) for each share, the teams of threads taking
  // contiguous runs of shares (Cpu::in_batch_shares).
  template <class F>
  static void for_each_share(int64_t n, int64_t shares, const F& body) {
    B::in_batch_shares(shares, [&](int64_t s0, int64_t s1) {
      for (int64_t s = s0; s < s1; ++s) body(s, share_begin(s, shares, n), share_begin(s + 1, shares, n));
    });
  }

  // Images [first, last) of x, copied (a layer keeps its input for backward).
  static Tensor<T, B> images(const Tensor<T, B>& x, int64_t first, int64_t last) {
    const int64_t size = x.numel() / x.dim(0);
    Tensor<T, B> part({last - first, x.dim(1), x.dim(2), x.dim(3)});
    B::copy(part.data(), x.data() + first * size, part.numel());
    return part;
  }
  static void put_images(const Tensor<T, B>& part, int64_t first, Tensor<T, B>& whole) {
    B::copy(whole.data() + first * (whole.numel() / whole.dim(0)), part.data(), part.numel());
  }

  Tensor<T, B> infer_in_shares(const Tensor<T, B>& x, std::span<const double> timesteps, Conditioning c,
                               int64_t shares) {
    check_inputs(x, timesteps, c);
    const int64_t n = x.dim(0);
    Tensor<T, B> y({n, config_.out_channels, x.dim(2), x.dim(3)});
    for_each_share(n, shares, [&](int64_t, int64_t first, int64_t last) {
      Tensor<T, B> rows;
      put_images(run(images(x, first, last), timesteps.subspan(first, last - first), c.part(first, last, rows),
                     nullptr, false, {}),
                 first, y);
    });
    return y;
  }

  // Training in shares: share s runs on replica s, a UNet whose parameter
  // values are this one's (aliases) and which keeps its own caches. Replica
  // 0 adds its gradients straight into this model's; the others into their
  // own, which backward then adds in share order. Dropout masks are drawn by
  // place in the whole batch (BatchShare), so they are the whole batch's.
  Tensor<T, B> forward_in_shares(const Tensor<T, B>& x, std::span<const double> timesteps, Conditioning c,
                                 Generator* gen) {
    check_inputs(x, timesteps, c);
    const int64_t n = x.dim(0), shares = training_shares(n);
    bind_replicas(shares);
    Tensor<T, B> y({n, config_.out_channels, x.dim(2), x.dim(3)});
    std::vector<Generator> gens(size_t(shares), gen ? *gen : Generator{0});
    for_each_share(n, shares, [&](int64_t s, int64_t first, int64_t last) {
      Tensor<T, B> rows;
      put_images(replicas_[s]->run(images(x, first, last), timesteps.subspan(first, last - first),
                                   c.part(first, last, rows), gen ? &gens[s] : nullptr, true, {first, n}),
                 first, y);
    });
    if (gen) *gen = gens[0];  // every share moved past the whole batch's masks
    cached_ = true;
    cached_shares_ = shares;
    output_shape_ = y.shape();
    return y;
  }

  Tensor<T, B> backward_in_shares(const Tensor<T, B>& dy) {
    const int64_t shares = std::exchange(cached_shares_, 0), n = output_shape_[0];
    HAZE_REQUIRE(dy.shape() == output_shape_, "UNet::backward: dy ", dy.shape(), " does not match the forward output ",
                 output_shape_);
    Tensor<T, B> dx({n, config_.in_channels, dy.dim(2), dy.dim(3)});
    if (config_.takes_class_vectors()) class_vectors_grad_ = Tensor<T, B>({n, config_.time_embed_dim()});
    for_each_share(n, shares, [&](int64_t s, int64_t first, int64_t last) {
      if (s > 0) zero_grad(*replicas_[s]);
      put_images(replicas_[s]->backward(images(dy, first, last)), first, dx);
      if (config_.takes_class_vectors()) put_images(replicas_[s]->class_vectors_grad_, first, class_vectors_grad_);
    });
    add_replica_grads(shares);
    return dx;
  }

  // Replicas 0 .. shares - 1 share this model's parameter values; replica 0
  // its gradients too. Bound at every forward: a parameter's tensor may
  // have been replaced (a checkpoint loaded) since the last.
  void bind_replicas(int64_t shares) {
    while (int64_t(replicas_.size()) < shares) replicas_.push_back(std::make_unique<UNet>(config_));
    const Parameters<T, B> mine = parameters_of(*this);
    for (int64_t s = 0; s < shares; ++s) {
      const Parameters<T, B> theirs = parameters_of(*replicas_[s]);
      for (size_t i = 0; i < mine.size(); ++i) {
        *theirs[i].value = keep(*mine[i].value);
        if (s == 0) *theirs[i].grad = keep(*mine[i].grad);  // the others keep their own
      }
    }
  }

  // grad += replica 1's + replica 2's + ... in that order, element by element.
  void add_replica_grads(int64_t shares) {
    const Parameters<T, B> mine = parameters_of(*this);
    std::vector<Parameters<T, B>> theirs;
    for (int64_t s = 1; s < shares; ++s) theirs.push_back(parameters_of(*replicas_[s]));
    std::vector<int64_t> starts{0};  // parameter i's elements are [starts[i], starts[i + 1]) of all
    for (const auto& p : mine) starts.push_back(starts.back() + p.grad->numel());
    B::in_ranges(starts.back(), [&](int64_t begin, int64_t end) {
      for (size_t i = size_t(std::upper_bound(starts.begin(), starts.end(), begin) - starts.begin() - 1);
           i < mine.size() && starts[i] < end; ++i) {
        const int64_t lo = std::max(begin, starts[i]) - starts[i], hi = std::min(end, starts[i + 1]) - starts[i];
        T* grad = mine[i].grad->data();
        for (const auto& replica : theirs) {
          const T* part = replica[i].grad->data();
          for (int64_t e = lo; e < hi; ++e) grad[e] += part[e];
        }
      }
    });
  }

  // For level i of `blocks` ("down_blocks"), name(module, j) gives what a
  // trace calls module j: a callable making "down_blocks.1.attentions.0",
  // so that the string is built only while tracing.
  static auto block_names(const char* blocks, int i) {
    return [=](const char* module, int j) {
      return [=] { return std::string(blocks) + "." + std::to_string(i) + "." + module + "." + std::to_string(j); };
    };
  }

  template <class Layer>
  static Tensor<T, B> step(Layer& layer, const Tensor<T, B>& x, bool training) {
    return training ? layer.forward(x) : layer.infer(x);
  }

  Tensor<T, B> run(const Tensor<T, B>& x, std::span<const double> timesteps, Conditioning c, Generator* gen,
                   bool training, BatchShare share) {
    check_inputs(x, timesteps, c);
    // What a trace records (forward only: infer may run on many threads).
    const auto traced = [training](const auto& name, const Tensor<T, B>& t) {
      if (training) trace_output(name, t);
    };
    // Time (and class) embedding.
    Tensor<T, B> temb = step(time_embedding_, time_projection(timesteps), training);
    traced("time_embedding", temb);
    if (class_embedding_) {
      const Tensor<T, B> cemb = training ? class_embedding_->forward(c.labels) : class_embedding_->infer(c.labels);
      traced("class_embedding", cemb);
      ops::axpy(T(1), cemb, temb);
    } else if (class_timestep_embedding_) {
      const std::vector<double> values(c.labels.begin(), c.labels.end());
      const Tensor<T, B> cemb = step(*class_timestep_embedding_, time_projection(values), training);
      traced("class_embedding", cemb);
      ops::axpy(T(1), cemb, temb);
    } else if (c.vectors) {
      ops::axpy(T(1), *c.vectors, temb);
    }
    const auto resnet = [&](ResBlock<T, B>& block, const Tensor<T, B>& in) {
      return training ? block.forward(in, temb, gen, share) : block.infer(in, temb);
    };

    std::vector<Tensor<T, B>> skips;
    Tensor<T, B> h = config_.center_input_sample ? step(conv_in_, centered(x), training) : step(conv_in_, x, training);
    traced("conv_in", h);
    skips.push_back(keep(h));
    for (int i = 0; i < int(down_.size()); ++i) {
      Level& level = down_[i];
      const auto name = block_names("down_blocks", i);
      for (int j = 0; j < int(level.resnets.size()); ++j) {
        h = resnet(level.resnets[j], h);
        traced(name("resnets", j), h);
        if (!level.attentions.empty()) {
          h = step(level.attentions[j], h, training);
          traced(name("attentions", j), h);
        }
        skips.push_back(keep(h));
      }
      if (level.downsample) {
        h = step(*level.downsample, h, training);
        traced(name("downsamplers", 0), h);
        skips.push_back(keep(h));
      }
    }
    if (training) {  // infer writes no member: batch shares run it at once
      skip_channels_.clear();
      for (const auto& s : skips) skip_channels_.push_back(s.dim(1));
    }

    h = resnet(mid_resnets_[0], h);
    traced("mid_block.resnets.0", h);
    if (!mid_attention_.empty()) {
      h = step(mid_attention_[0], h, training);
      traced("mid_block.attentions.0", h);
    }
    h = resnet(mid_resnets_[1], h);
    traced("mid_block.resnets.1", h);

    for (int i = 0; i < int(up_.size()); ++i) {
      Level& level = up_[i];
      const auto name = block_names("up_blocks", i);
      for (int j = 0; j < int(level.resnets.size()); ++j) {
        const Tensor<T, B> skip = std::move(skips.back());
        skips.pop_back();
        Tensor<T, B> joined({h.dim(0), h.dim(1) + skip.dim(1), h.dim(2), h.dim(3)});
        ops::concat_channels(h, skip, joined);
        h = resnet(level.resnets[j], joined);
        traced(name("resnets", j), h);
        if (!level.attentions.empty()) {
          h = step(level.attentions[j], h, training);
          traced(name("attentions", j), h);
        }
      }
      if (level.upsample) {
        h = step(*level.upsample, h, training);
        traced(name("upsamplers", 0), h);
      }
    }
    h = step(conv_norm_out_, h, training);  // the norm ends in SiLU
    traced("conv_norm_out", h);
    Tensor<T, B> y = step(conv_out_, h, training);
    traced("conv_out", y);
    if (fourier_) {  // diffusers' score-SDE output: the model's estimate over sigma
      ops::divide_per_sample(y, timesteps);
      if (training) output_divisors_.assign(timesteps.begin(), timesteps.end());
    }
    if (training) cached_ = true;
    return y;
  }

  Tensor<T, B> time_projection(std::span<const double> values) const {
    return fourier_ ? fourier_->project(values)
                    : sinusoidal_embedding<T, B>(values, config_.block_out_channels[0], config_.flip_sin_to_cos,
                                                 config_.freq_shift);
  }

  Tensor<T, B> divided_by_timesteps(const Tensor<T, B>& dy) const {
    HAZE_REQUIRE(dy.rank() >= 1 && dy.dim(0) == int64_t(output_divisors_.size()), "UNet::backward: dy ", dy.shape(),
                 " does not match the forward's batch of ", output_divisors_.size());
    Tensor<T, B> scaled(dy.shape());
    ops::copy(dy, scaled);
    ops::divide_per_sample(scaled, output_divisors_);
    return scaled;
  }

  static Tensor<T, B> centered(const Tensor<T, B>& x) {
    Tensor<T, B> y(x.shape());
    ops::map(y, detail::CenterSample{}, x);
    return y;
  }

  void check_inputs(const Tensor<T, B>& x, std::span<const double> timesteps, Conditioning c) const {
    const std::span<const int64_t> labels = c.labels;
    x.require_nonempty("UNet::forward");
    HAZE_REQUIRE(x.rank() == 4 && x.dim(1) == config_.in_channels, "UNet: expects input [N, ", config_.in_channels,
                 ", H, W], got ", x.shape());
    const int64_t factor = int64_t(1) << (config_.levels() - 1);
    HAZE_REQUIRE(x.dim(2) % factor == 0 && x.dim(3) % factor == 0, "UNet: spatial size ", x.dim(2), "x",
                 x.dim(3), " is not divisible by 2^(levels - 1) = ", factor);
    HAZE_REQUIRE(static_cast<int64_t>(timesteps.size()) == x.dim(0), "UNet: ", timesteps.size(),
                 " timesteps for a batch of ", x.dim(0));
    if (fourier_)  // here too, so that a bad one is named by its place in the whole batch
      for (size_t n = 0; n < timesteps.size(); ++n)
        HAZE_REQUIRE(std::isfinite(timesteps[n]) && timesteps[n] > 0, "UNet: timestep ", timesteps[n], " of sample ",
                     n, " is not finite and > 0 (time_embedding_type fourier: the model takes the noise level sigma)");
    if (!config_.takes_labels()) {
      HAZE_REQUIRE(labels.empty(), "UNet: labels given to an unconditional model (num_classes = 0)");
    } else {
      HAZE_REQUIRE(static_cast<int64_t>(labels.size()) == x.dim(0), "UNet: class-conditional model needs ",
                   x.dim(0), " labels, got ", labels.size(), " (use ", config_.num_classes, " for no class)");
    }
    // (The labels are checked here, so that a bad one is named by its place in the whole batch.)
    if (class_embedding_) {
      class_embedding_->check(labels);
    } else if (class_timestep_embedding_) {
      for (size_t n = 0; n < labels.size(); ++n)
        HAZE_REQUIRE(labels[n] >= (fourier_ ? 1 : 0) && labels[n] <= config_.num_classes, "UNet: label ", labels[n],
                     " of sample ", n, " is outside [", fourier_ ? 1 : 0, ", ", config_.num_classes,
                     "] (class_embed_type timestep", fourier_ ? ", whose Fourier projection takes the label's log)" : ")");
    }
    if (config_.takes_class_vectors()) {
      HAZE_REQUIRE(c.vectors, "UNet: the model's class_embed_type is identity: pass class vectors [", x.dim(0), ", ",
                   config_.time_embed_dim(), "] instead of labels");
      HAZE_REQUIRE(c.vectors->shape() == (Shape{x.dim(0), config_.time_embed_dim()}), "UNet: class vectors ",
                   c.vectors->shape(), " should be [", x.dim(0), ", ", config_.time_embed_dim(), "]");
    } else {
      HAZE_REQUIRE(!c.vectors, "UNet: class vectors given to a model whose class_embed_type is not identity");
    }
  }

  UNetConfig config_;
  Conv2d<T, B> conv_in_;
  TimestepEmbedding<T, B> time_embedding_;
  std::optional<FourierProjection<T, B>> fourier_;  // fourier_time
  std::optional<ClassEmbedding<T, B>> class_embedding_;
  std::optional<TimestepEmbedding<T, B>> class_timestep_embedding_;  // class_embed_type timestep
  std::vector<Level> down_, up_;
  std::vector<ResBlock<T, B>> mid_resnets_;
  std::vector<Attention<T, B>> mid_attention_;  // empty without mid_attention
  GroupNorm<T, B> conv_norm_out_;  // and SiLU
  Conv2d<T, B> conv_out_;
  std::vector<int64_t> skip_channels_;  // channels of each skip, in push order
  std::vector<double> output_divisors_;  // fourier_time: the forward's timesteps
  Tensor<T, B> class_vectors_grad_;      // identity: dL/d(class vectors) after backward
  bool cached_ = false;
  int64_t cached_shares_ = 0;                   // > 1: the cached forward ran in that many shares
  Shape output_shape_;                          // of that forward
  std::vector<std::unique_ptr<UNet>> replicas_;  // share s runs on replicas_[s]
};

}  // namespace haze::nn
