// The collectives under mpirun (2 and 4 ranks): ProcessGroup's host collectives, and both
// Communicator backends (NCCL only where every rank has a GPU of its own). Inputs are small
// integers made from the rank and the index, so float sums are exact and every result is known;
// sizes are awkward (1, 7, 1000, 100003) so no chunking can hide behind round numbers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "parallel/communicator.h"
#include "parallel/process_group.h"
#include "tests/mpi_test.h"
#include "trainer/gemm_algorithms.h"

#ifdef HYMBA_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "core/cuda_check.h"
#include "cuda/device_array.h"
#endif

namespace hymba::test {
namespace {

const int64_t kSizes[] = {1, 7, 1000, 100003};

// Rank r's element i: distinct per rank and index, and exact in float for every sum here.
float value(int rank, int64_t i) { return float(rank * 1000 + i); }

std::vector<float> values(int rank, int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = value(rank, i);
  return v;
}

// Σ over ranks q of value(q, offset + i), i < n.
std::vector<float> sums(int size, int64_t offset, int64_t n) {
  std::vector<float> v(static_cast<size_t>(n), 0.0f);
  for (int q = 0; q < size; ++q) {
    for (int64_t i = 0; i < n; ++i) v[size_t(i)] += value(q, offset + i);
  }
  return v;
}

// Every rank's values(q, n), one after the other: [size, n].
std::vector<float> every_part(int size, int64_t n) {
  std::vector<float> v;
  for (int q = 0; q < size; ++q) {
    const std::vector<float> part = values(q, n);
    v.insert(v.end(), part.begin(), part.end());
  }
  return v;
}

// got == want, reporting the first difference only. It never ends the test early (as ASSERT
// would): a failing rank must go on calling the collectives the other ranks call.
template <class T>
void expect_same(const std::vector<T>& got, const std::vector<T>& want, const std::string& what) {
  if (got.size() != want.size()) {
    ADD_FAILURE() << what << ": " << got.size() << " elements, want " << want.size();
    return;
  }
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] != want[i]) {
      ADD_FAILURE() << what << ": element " << i << " is " << +got[i] << ", want " << +want[i];
      return;
    }
  }
}

std::string context(const char* what, int64_t n, int root = -1) {
  return std::string(what) + " n " + std::to_string(n) + (root >= 0 ? " root " + std::to_string(root) : "");
}

// A minute, not the default 300 s: a hang fails before ctest's timeout, naming the collective.
class Collectives : public ::testing::Test {
 protected:
  void SetUp() override {
    saved_timeout_ = group().timeout_seconds();
    group().set_timeout_seconds(60);
  }
  void TearDown() override { group().set_timeout_seconds(saved_timeout_); }

  static ProcessGroup& group() { return test_group(); }
  static int rank() { return group().rank(); }
  static int size() { return group().size(); }

 private:
  double saved_timeout_ = 0;
};

// ---- ProcessGroup ------------------------------------------------------------------------------

TEST_F(Collectives, GroupComesFromMpirun) {
  EXPECT_TRUE(group().uses_mpi());
  EXPECT_GE(size(), 2);
  EXPECT_GE(rank(), 0);
  EXPECT_LT(rank(), size());
  EXPECT_GE(group().local_rank(), 0);
  EXPECT_LT(group().local_rank(), group().local_size());
  EXPECT_LE(group().local_size(), size());
}

TEST_F(Collectives, AllReduceSumOfDoublesIsExact) {
  for (int64_t n : kSizes) {
    std::vector<double> x(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) x[size_t(i)] = value(rank(), i);
    group().all_reduce_sum(x.data(), n);
    const std::vector<float> want = sums(size(), 0, n);
    expect_same(x, std::vector<double>(want.begin(), want.end()), context("all_reduce_sum", n));
  }
}

// Values whose sum depends on the order of the additions: every rank must get the sum in rank
// order, bit for bit.
TEST_F(Collectives, AllReduceSumAddsInRankOrderOnEveryRank) {
  const int64_t n = 1000;
  // Mantissas from a hash, exponents from 2^-20 to 2^20. No multiplication: the compiler may
  // not fuse it with the additions below into an FMA, which would change the expected bits.
  auto input = [](int q, int64_t i) {
    const double mantissa = 1.0 + double((q * 7919 + i * 104729) % 1000003) / 1000003.0;
    return std::ldexp(q % 2 ? -mantissa : mantissa, int((q * 5 + i) % 41) - 20);
  };
  std::vector<double> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) x[size_t(i)] = input(rank(), i);
  group().all_reduce_sum(x.data(), n);
  std::vector<double> want(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    want[size_t(i)] = input(0, i);
    for (int q = 1; q < size(); ++q) want[size_t(i)] += input(q, i);
  }
  EXPECT_EQ(std::memcmp(x.data(), want.data(), x.size() * sizeof(double)), 0) << "not added in rank order";
  // And the same bits as rank 0's.
  std::vector<double> root = x;
  group().broadcast(root.data(), int64_t(root.size() * sizeof(double)), 0);
  EXPECT_EQ(std::memcmp(root.data(), x.data(), root.size() * sizeof(double)), 0);
}

TEST_F(Collectives, BroadcastBytesFromEveryRoot) {
  for (int root = 0; root < size(); ++root) {
    for (int64_t n : kSizes) {
      auto pattern = [n](int r) {
        std::vector<unsigned char> bytes(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) bytes[size_t(i)] = static_cast<unsigned char>(r * 31 + i);
        return bytes;
      };
      std::vector<unsigned char> bytes = pattern(rank());
      group().broadcast(bytes.data(), n, root);
      expect_same(bytes, pattern(root), context("broadcast", n, root));
    }
  }
}

TEST_F(Collectives, BroadcastStringFromEveryRoot) {
  // Root 0's string is empty: the length goes first, the other ranks' strings shrink to it.
  auto text = [](int r) {
    return r == 0 ? std::string() : std::string(size_t(r) * 1001, char('a' + r)) + "\n";
  };
  for (int root = 0; root < size(); ++root) {
    std::string s = text(rank()) + "mine";
    group().broadcast(s, root);
    EXPECT_EQ(s, text(root) + "mine") << "root " << root;
  }
}

// The GEMM algorithms a GPU job agrees on after its first step (trainer/gemm_algorithms.h): every
// rank ends with rank 0's list, longer or shorter than its own, and an empty one too.
TEST_F(Collectives, GemmChoicesGoFromRankZeroToEveryRank) {
  auto list = [](int r, size_t shapes) {
    GemmChoices c;
    c.library_version = 130000 + r;
    for (size_t i = 0; i < shapes; ++i) {
      GemmChoice row;
      for (size_t w = 0; w < row.size(); ++w) row[w] = int64_t(r) * 1000 + int64_t(i * row.size() + w) - 7;
      c.shapes.push_back(row);
    }
    return c;
  };
  for (const size_t zero_shapes : {size_t(3), size_t(0)}) {
    GemmChoices mine = rank() == 0 ? list(0, zero_shapes) : list(rank(), 5);
    broadcast_gemm_choices(mine, group());
    const GemmChoices want = list(0, zero_shapes);
    EXPECT_EQ(mine.library_version, want.library_version);
    EXPECT_EQ(mine.shapes, want.shapes) << "rank 0 with " << zero_shapes << " shapes";
  }
}

TEST_F(Collectives, GatherToEveryRoot) {
  for (int root = 0; root < size(); ++root) {
    for (int64_t n : kSizes) {
      const std::vector<float> send = values(rank(), n);
      std::vector<float> recv(rank() == root ? size_t(size()) * size_t(n) : 0, -1.0f);
      group().gather(send.data(), rank() == root ? recv.data() : nullptr, n, root);
      if (rank() == root) expect_same(recv, every_part(size(), n), context("gather", n, root));
    }
  }
}

TEST_F(Collectives, ScatterFromEveryRoot) {
  for (int root = 0; root < size(); ++root) {
    for (int64_t n : kSizes) {
      const std::vector<float> send = rank() == root ? values(root, size() * n) : std::vector<float>();
      std::vector<float> recv(size_t(n), -1.0f);
      group().scatter(rank() == root ? send.data() : nullptr, recv.data(), n, root);
      const std::vector<float> all = values(root, size() * n);
      expect_same(recv, std::vector<float>(all.begin() + rank() * n, all.begin() + (rank() + 1) * n),
                  context("scatter", n, root));
    }
  }
}

TEST_F(Collectives, BarrierAndCollectivesKeepTheirOrder) {
  for (int k = 0; k < 20; ++k) {
    group().barrier();
    double x = rank() + k;
    group().all_reduce_sum(&x, 1);
    EXPECT_EQ(x, size() * (size() - 1) / 2.0 + size() * k) << "round " << k;
  }
}

// A group of one (no mpirun) on every rank at once: each collective is a copy or does nothing,
// and nothing reaches MPI (a stray MPI call would hang or mix with the job's collectives).
TEST_F(Collectives, GroupOfOneCopies) {
  ProcessGroup single;
  EXPECT_FALSE(single.uses_mpi());
  EXPECT_EQ(single.size(), 1);
  double d[3] = {1.5, -2, 3};
  single.all_reduce_sum(d, 3);
  EXPECT_EQ(d[2], 3);
  std::string s = "kept";
  single.broadcast(s, 0);
  EXPECT_EQ(s, "kept");
  const std::vector<float> send = values(3, 7);
  std::vector<float> recv(7, 0.0f);
  single.gather(send.data(), recv.data(), 7, 0);
  EXPECT_EQ(recv, send);
  std::fill(recv.begin(), recv.end(), 0.0f);
  single.scatter(send.data(), recv.data(), 7, 0);
  EXPECT_EQ(recv, send);
  single.barrier();

  std::unique_ptr<Communicator> comm = make_mpi_communicator(single);
  EXPECT_EQ(comm->size(), 1);
  std::fill(recv.begin(), recv.end(), 0.0f);
  comm->reduce_scatter_sum(send.data(), recv.data(), 7);
  std::vector<float> x = send;
  comm->all_gather_in_place(x.data(), 7);
  comm->all_reduce_sum(x.data(), 7);
  comm->broadcast(x.data(), 7, 0);
  comm->wait();
  EXPECT_EQ(recv, send);
  EXPECT_EQ(x, send);
}

// ---- Communicator: both backends run the same checks over buffers they place ---------------------

// Host or device buffers for the checks below.
class Buffers {
 public:
  virtual ~Buffers() = default;
  virtual float* make(const std::vector<float>& host) = 0;  // lives as long as this object
  virtual std::vector<float> read(const float* p, int64_t n) = 0;
};

class HostBuffers : public Buffers {
 public:
  float* make(const std::vector<float>& host) override {
    held_.push_back(std::make_unique<std::vector<float>>(host));
    return held_.back()->data();
  }
  std::vector<float> read(const float* p, int64_t n) override { return std::vector<float>(p, p + n); }

 private:
  std::vector<std::unique_ptr<std::vector<float>>> held_;
};

void expect_reduce_scatter(Communicator& comm, Buffers& buffers, int64_t n) {
  const int r = comm.rank(), w = comm.size();
  const float* send = buffers.make(values(r, w * n));
  float* recv = buffers.make(std::vector<float>(size_t(n), -1.0f));
  comm.reduce_scatter_sum(send, recv, n);
  comm.wait();
  expect_same(buffers.read(recv, n), sums(w, r * n, n), context("reduce_scatter_sum", n));
  expect_same(buffers.read(send, w * n), values(r, w * n), context("reduce_scatter_sum's send buffer", n));
}

std::vector<float> gather_input(int r, int w, int64_t n) {
  std::vector<float> x(size_t(w) * size_t(n), -1.0f);  // other ranks' parts: stale values
  for (int64_t i = 0; i < n; ++i) x[size_t(r * n + i)] = value(r, i);
  return x;
}

void expect_all_gather(Communicator& comm, Buffers& buffers, int64_t n) {
  float* x = buffers.make(gather_input(comm.rank(), comm.size(), n));
  comm.all_gather_in_place(x, n);
  comm.wait();
  expect_same(buffers.read(x, comm.size() * n), every_part(comm.size(), n),
              context("all_gather_in_place", n));
}

void expect_all_reduce(Communicator& comm, Buffers& buffers, int64_t n) {
  float* x = buffers.make(values(comm.rank(), n));
  comm.all_reduce_sum(x, n);
  comm.wait();
  expect_same(buffers.read(x, n), sums(comm.size(), 0, n), context("all_reduce_sum", n));
}

void expect_broadcast(Communicator& comm, Buffers& buffers, int64_t n) {
  for (int root = 0; root < comm.size(); ++root) {
    float* x = buffers.make(values(comm.rank(), n));
    comm.broadcast(x, n, root);
    comm.wait();
    expect_same(buffers.read(x, n), values(root, n), context("broadcast", n, root));
  }
}

// Every kind of collective and every size in flight at once, then one wait(): the training step
// issues a reduce-scatter per bucket during backward and waits once.
void expect_many_in_flight(Communicator& comm, Buffers& buffers) {
  const int r = comm.rank(), w = comm.size();
  struct Issued {
    int64_t n;
    const float* rs_send;
    float *rs_recv, *gathered, *reduced, *broadcast;
  };
  std::vector<Issued> issued;
  for (int repeat = 0; repeat < 2; ++repeat) {
    for (int64_t n : kSizes) {
      Issued s{n,
               buffers.make(values(r, w * n)),
               buffers.make(std::vector<float>(size_t(n), -1.0f)),
               buffers.make(gather_input(r, w, n)),
               buffers.make(values(r, n)),
               buffers.make(values(r, n))};
      comm.reduce_scatter_sum(s.rs_send, s.rs_recv, n);
      comm.all_gather_in_place(s.gathered, n);
      comm.all_reduce_sum(s.reduced, n);
      comm.broadcast(s.broadcast, n, (repeat + int(n)) % w);
      issued.push_back(s);
    }
  }
  comm.wait();
  for (size_t k = 0; k < issued.size(); ++k) {
    const Issued& s = issued[k];
    const int64_t n = s.n;
    const int root = (int(k / std::size(kSizes)) + int(n)) % w;
    expect_same(buffers.read(s.rs_recv, n), sums(w, r * n, n), context("reduce_scatter_sum", n));
    expect_same(buffers.read(s.gathered, w * n), every_part(w, n), context("all_gather_in_place", n));
    expect_same(buffers.read(s.reduced, n), sums(w, 0, n), context("all_reduce_sum", n));
    expect_same(buffers.read(s.broadcast, n), values(root, n), context("broadcast", n, root));
  }
  comm.wait();  // nothing in flight: returns at once
}

void expect_every_collective(Communicator& comm, Buffers& buffers) {
  for (int64_t n : kSizes) {
    expect_reduce_scatter(comm, buffers, n);
    expect_all_gather(comm, buffers, n);
    expect_all_reduce(comm, buffers, n);
    expect_broadcast(comm, buffers, n);
  }
}

TEST_F(Collectives, MpiCommunicatorEveryCollective) {
  std::unique_ptr<Communicator> comm = make_mpi_communicator(group());
  EXPECT_EQ(comm->rank(), rank());
  EXPECT_EQ(comm->size(), size());
  HostBuffers buffers;
  expect_every_collective(*comm, buffers);
}

TEST_F(Collectives, MpiCommunicatorManyInFlight) {
  std::unique_ptr<Communicator> comm = make_mpi_communicator(group());
  HostBuffers buffers;
  expect_many_in_flight(*comm, buffers);
}

// The group's host collectives between a communicator's issue and its wait (the loss sum during
// backward) must not be mixed up with the communicator's collectives.
TEST_F(Collectives, MpiCommunicatorBesideGroupCollectives) {
  std::unique_ptr<Communicator> comm = make_mpi_communicator(group());
  const int64_t n = 1000;
  std::vector<float> x = values(rank(), n);
  comm->all_reduce_sum(x.data(), n);
  double loss = rank() + 1;
  group().all_reduce_sum(&loss, 1);
  comm->wait();
  EXPECT_EQ(loss, size() * (size() + 1) / 2.0);
  expect_same(x, sums(size(), 0, n), context("all_reduce_sum", n));
}

// ---- NCCL --------------------------------------------------------------------------------------

#ifdef HYMBA_HAVE_CUDA

class DeviceBuffers : public Buffers {
 public:
  float* make(const std::vector<float>& host) override {
    held_.push_back(std::make_unique<cuda::DeviceArray<float>>(host));
    return held_.back()->data();
  }
  std::vector<float> read(const float* p, int64_t n) override {
    std::vector<float> host(static_cast<size_t>(n));
    HYMBA_CUDA_CHECK(cudaDeviceSynchronize());
    if (n > 0) {
      HYMBA_CUDA_CHECK(cudaMemcpy(host.data(), p, size_t(n) * sizeof(float), cudaMemcpyDeviceToHost));
    }
    return host;
  }

 private:
  std::vector<std::unique_ptr<cuda::DeviceArray<float>>> held_;
};

// Every rank needs a GPU of its own, and all ranks must agree to skip (or none would).
class NcclCollectives : public Collectives {
 protected:
  void SetUp() override {
    Collectives::SetUp();
    if (!each_rank_has_a_gpu(group())) GTEST_SKIP() << "needs a GPU per rank (" << cuda_device_count() << " here)";
  }
};

TEST_F(NcclCollectives, EveryCollective) {
  std::unique_ptr<Communicator> comm = make_nccl_communicator(group(), nullptr);
  EXPECT_EQ(comm->rank(), rank());
  EXPECT_EQ(comm->size(), size());
  DeviceBuffers buffers;
  expect_every_collective(*comm, buffers);
}

TEST_F(NcclCollectives, ManyInFlight) {
  std::unique_ptr<Communicator> comm = make_nccl_communicator(group(), nullptr);
  DeviceBuffers buffers;
  expect_many_in_flight(*comm, buffers);
}

// On a compute stream of its own: the collective must start after the compute stream's copy
// into its buffer, and the compute stream's copy out must follow the collective.
TEST_F(NcclCollectives, OrderedWithTheComputeStream) {
  cudaStream_t compute = nullptr;
  HYMBA_CUDA_CHECK(cudaStreamCreateWithFlags(&compute, cudaStreamNonBlocking));
  {
    std::unique_ptr<Communicator> comm = make_nccl_communicator(group(), compute);
    const int64_t n = 100003;
    const std::vector<float> input = values(rank(), n);
    cuda::DeviceArray<float> x = cuda::DeviceArray<float>::zeros(n);
    float* pinned = nullptr;
    HYMBA_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&pinned), size_t(n) * sizeof(float)));
    std::copy(input.begin(), input.end(), pinned);
    HYMBA_CUDA_CHECK(
        cudaMemcpyAsync(x.data(), pinned, size_t(n) * sizeof(float), cudaMemcpyHostToDevice, compute));
    comm->all_reduce_sum(x.data(), n);
    comm->wait();
    HYMBA_CUDA_CHECK(
        cudaMemcpyAsync(pinned, x.data(), size_t(n) * sizeof(float), cudaMemcpyDeviceToHost, compute));
    HYMBA_CUDA_CHECK(cudaStreamSynchronize(compute));
    expect_same(std::vector<float>(pinned, pinned + n), sums(size(), 0, n), context("all_reduce_sum", n));
    HYMBA_CUDA_CHECK(cudaFreeHost(pinned));
  }
  HYMBA_CUDA_CHECK(cudaStreamDestroy(compute));
}

#endif  // HYMBA_HAVE_CUDA

}  // namespace
}  // namespace hymba::test
