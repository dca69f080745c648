// The Pathfinder generator (data/pathfinder_gen.h): snakes of paddles placed with exact segment
// distances on a spatial grid, drawn by distance coverage, written in LRA's release layout.
#include "data/pathfinder_gen.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <numbers>
#include <vector>

#include "core/error.h"
#include "core/threading.h"
#include "data/draws.h"
#include "data/pathfinder.h"

namespace fs = std::filesystem;

namespace mega {

namespace {

struct Vec {
  double x = 0, y = 0;
};
Vec operator+(Vec a, Vec b) { return {a.x + b.x, a.y + b.y}; }
Vec operator-(Vec a, Vec b) { return {a.x - b.x, a.y - b.y}; }
Vec operator*(double s, Vec a) { return {s * a.x, s * a.y}; }
double dot(Vec a, Vec b) { return a.x * b.x + a.y * b.y; }
double cross(Vec a, Vec b) { return a.x * b.y - a.y * b.x; }
Vec direction(double angle) { return {std::cos(angle), std::sin(angle)}; }

double point_segment_distance(Vec p, Vec a, Vec b) {
  const Vec ab = b - a, ap = p - a;
  const double length2 = dot(ab, ab);
  const double t = length2 > 0 ? std::clamp(dot(ap, ab) / length2, 0.0, 1.0) : 0.0;
  const Vec d = ap - t * ab;
  return std::sqrt(dot(d, d));
}

bool segments_cross(Vec a, Vec b, Vec c, Vec d) {
  const double d1 = cross(b - a, c - a), d2 = cross(b - a, d - a);
  const double d3 = cross(d - c, a - c), d4 = cross(d - c, b - c);
  return ((d1 > 0 && d2 < 0) || (d1 < 0 && d2 > 0)) && ((d3 > 0 && d4 < 0) || (d3 < 0 && d4 > 0));
}

double segment_distance(Vec a, Vec b, Vec c, Vec d) {
  if (segments_cross(a, b, c, d)) return 0;
  return std::min({point_segment_distance(a, c, d), point_segment_distance(b, c, d),
                   point_segment_distance(c, a, b), point_segment_distance(d, a, b)});
}

struct Paddle {
  Vec a, b;
  int object = 0;  // one id per snake or single paddle
  int index = 0;   // position within its snake
};

struct Tip {
  Vec at;
  int object = 0;
};

// Distances that keep objects apart in the drawn image. A pixel is inked when its centre lies within
// `reach` = thickness / 2 + 0.5 of a stroke's centre line (the coverage ramp). Two inked pixels that are
// 8-neighbours are at most sqrt(2) apart, so strokes whose centre lines stay more than
// 2 reach + sqrt(2) apart never touch; likewise for a marker disc (inked within radius + 0.5).
struct Clearances {
  double reach, paddle, tip, marker;
  explicit Clearances(const PathfinderGeneratorOptions& o) {
    constexpr double kSlack = 0.05;
    reach = o.paddle_thickness / 2 + 0.5;
    paddle = 2 * reach + std::numbers::sqrt2 + kSlack;
    tip = o.marker_radius + 0.5 + reach + std::numbers::sqrt2 + kSlack;
    marker = 2 * (o.marker_radius + 0.5) + std::numbers::sqrt2 + kSlack;
  }
};

class Scene {
 public:
  explicit Scene(const PathfinderGeneratorOptions& o)
      : o_(o), clear_(o), cell_(o.paddle_length + clear_.paddle),
        cells_(static_cast<int>(std::ceil(o.resolution / cell_))), grid_(cells_ * cells_) {}

  const std::vector<Paddle>& paddles() const { return paddles_; }
  const std::vector<Tip>& tips() const { return tips_; }
  const Clearances& clearances() const { return clear_; }

  bool inside(Vec p) const {
    return p.x >= o_.padding && p.y >= o_.padding && p.x <= o_.resolution - o_.padding &&
           p.y <= o_.resolution - o_.padding;
  }

  // Whether `p` may be added: inside the image, clear of every other object's paddles and tips and of
  // its own snake's paddles except the two before it (which a gap, not a clearance, separates).
  bool fits(const Paddle& p) const {
    if (!inside(p.a) || !inside(p.b)) return false;
    for (const Tip& t : tips_)
      if (t.object != p.object && point_segment_distance(t.at, p.a, p.b) < clear_.tip) return false;
    const double c = clear_.paddle;
    const double x0 = std::min(p.a.x, p.b.x) - c, x1 = std::max(p.a.x, p.b.x) + c;
    const double y0 = std::min(p.a.y, p.b.y) - c, y1 = std::max(p.a.y, p.b.y) + c;
    return visit_cells(p, c, [&](int id) {
      const Paddle& q = paddles_[id];
      if (q.object == p.object && q.index >= p.index - 2) return true;
      // Bounding boxes further apart than the clearance settle most pairs without the exact distance.
      if (std::max(q.a.x, q.b.x) < x0 || std::min(q.a.x, q.b.x) > x1 || std::max(q.a.y, q.b.y) < y0 ||
          std::min(q.a.y, q.b.y) > y1)
        return true;
      return segment_distance(p.a, p.b, q.a, q.b) >= c;
    });
  }

  void add(const Paddle& p) {
    const int id = static_cast<int>(paddles_.size());
    paddles_.push_back(p);
    visit_cell_ids(p, 0, [&](int cell) { grid_[cell].push_back(id); });
  }

  // A marked end: later paddles of other objects keep their distance. False if a paddle already there
  // is too close, or another snake's tip is.
  bool add_tip(Tip tip) {
    for (const Tip& t : tips_) {
      const Vec d = t.at - tip.at;
      if (t.object != tip.object && std::sqrt(dot(d, d)) < clear_.marker) return false;
    }
    for (const Paddle& q : paddles_)
      if (q.object != tip.object && point_segment_distance(tip.at, q.a, q.b) < clear_.tip) return false;
    tips_.push_back(tip);
    return true;
  }

 private:
  template <class F>
  void visit_cell_ids(const Paddle& p, double margin, F&& f) const {
    auto cell_of = [&](double v) { return std::clamp(static_cast<int>(std::floor(v / cell_)), 0, cells_ - 1); };
    const int x0 = cell_of(std::min(p.a.x, p.b.x) - margin), x1 = cell_of(std::max(p.a.x, p.b.x) + margin);
    const int y0 = cell_of(std::min(p.a.y, p.b.y) - margin), y1 = cell_of(std::max(p.a.y, p.b.y) + margin);
    for (int y = y0; y <= y1; ++y)
      for (int x = x0; x <= x1; ++x) f(y * cells_ + x);
  }
  // Calls f(paddle id) for the paddles near `p` until f returns false; returns whether none did.
  template <class F>
  bool visit_cells(const Paddle& p, double margin, F&& f) const {
    bool all = true;
    visit_cell_ids(p, margin, [&](int cell) {
      for (int id : grid_[cell]) {
        if (!all) return;
        all = f(id);
      }
    });
    return all;
  }

  const PathfinderGeneratorOptions& o_;
  Clearances clear_;
  double cell_;
  int cells_;
  std::vector<std::vector<int>> grid_;  // paddle ids by the cells their bounding box covers
  std::vector<Paddle> paddles_;
  std::vector<Tip> tips_;
};

struct SnakeHead {
  Vec end;
  double angle = 0;
  int index = 0;  // of the last paddle
};

class Generator {
 public:
  Generator(const PathfinderGeneratorOptions& o, uint64_t seed, uint64_t stream)
      : o_(o), draws_(seed, stream), max_turn_(o.max_turn_degrees * std::numbers::pi / 180) {}

  Vec random_point(double lo, double hi) { return {lo + (hi - lo) * draws_.uniform(), lo + (hi - lo) * draws_.uniform()}; }
  double random_angle() { return 2 * std::numbers::pi * draws_.uniform(); }

  // The first paddle of `object` from `tip` in a random direction.
  bool start(Scene& scene, int object, Vec tip, SnakeHead& head) {
    for (int64_t t = 0; t < o_.max_paddle_tries; ++t) {
      const double angle = random_angle();
      Paddle p{tip, tip + o_.paddle_length * direction(angle), object, 0};
      if (scene.fits(p)) {
        scene.add(p);
        head = {p.b, angle, 0};
        return true;
      }
    }
    return false;
  }

  // One more paddle, `paddle_gap` beyond the last and turned by at most max_turn.
  bool extend(Scene& scene, int object, SnakeHead& head) {
    for (int64_t t = 0; t < o_.max_paddle_tries; ++t) {
      const double angle = head.angle + max_turn_ * (2 * draws_.uniform() - 1);
      const Vec from = head.end + o_.paddle_gap * direction(angle);
      Paddle p{from, from + o_.paddle_length * direction(angle), object, head.index + 1};
      if (scene.fits(p)) {
        scene.add(p);
        head = {p.b, angle, p.index};
        return true;
      }
    }
    return false;
  }

  // The two targets (objects 0 and 1), grown in turns; their four ends registered as tips.
  bool place_targets(Scene& scene, std::array<Vec, 2>& origins, std::array<Vec, 2>& terminals) {
    const double lo = std::max(o_.padding, o_.seed_distance / 2), hi = o_.resolution - lo;
    origins[0] = random_point(lo, hi);
    origins[1] = origins[0] + o_.seed_distance * direction(random_angle());
    if (!scene.inside(origins[1])) return false;
    std::array<SnakeHead, 2> heads;
    for (int s = 0; s < 2; ++s)
      if (!scene.add_tip({origins[s], s}) || !start(scene, s, origins[s], heads[s])) return false;
    for (int64_t k = 1; k < o_.contour_length; ++k)
      for (int s = 0; s < 2; ++s)
        if (!extend(scene, s, heads[s])) return false;
    for (int s = 0; s < 2; ++s) {
      terminals[s] = heads[s].end;
      if (!scene.add_tip({terminals[s], s})) return false;
    }
    return true;
  }

  void place_distractors(Scene& scene) {
    int object = 2;
    for (int64_t d = 0; d < o_.distractor_snakes; ++d, ++object) {
      SnakeHead head;
      bool started = false;
      for (int64_t t = 0; t < o_.max_paddle_tries && !started; ++t)
        started = start(scene, object, random_point(o_.padding, o_.resolution - o_.padding), head);
      for (int64_t k = 1; started && k < o_.distractor_length; ++k)
        if (!extend(scene, object, head)) break;  // a shorter distractor is still a distractor
    }
    for (int64_t t = 0; t < o_.single_paddle_tries; ++t) {
      const Vec from = random_point(o_.padding, o_.resolution - o_.padding);
      Paddle p{from, from + o_.paddle_length * direction(random_angle()), object, 0};
      if (scene.fits(p)) {
        scene.add(p);
        ++object;
      }
    }
  }

  int64_t below(int64_t n) { return draws_.below(n); }

 private:
  const PathfinderGeneratorOptions& o_;
  Draws draws_;
  double max_turn_;
};

// Coverage of a pixel whose centre is `distance` from a shape's edge-defining centre (line or point)
// of half-width `radius`: 1 inside, 0 beyond radius + 1, linear in between (a one-pixel ramp).
double coverage(double distance, double radius) { return std::clamp(radius + 0.5 - distance, 0.0, 1.0); }

void draw_paddle(std::vector<double>& canvas, int64_t n, const Paddle& p, double radius) {
  const double reach = radius + 0.5;
  const int64_t x0 = std::max<int64_t>(0, static_cast<int64_t>(std::floor(std::min(p.a.x, p.b.x) - reach)));
  const int64_t x1 = std::min<int64_t>(n - 1, static_cast<int64_t>(std::ceil(std::max(p.a.x, p.b.x) + reach)));
  const int64_t y0 = std::max<int64_t>(0, static_cast<int64_t>(std::floor(std::min(p.a.y, p.b.y) - reach)));
  const int64_t y1 = std::min<int64_t>(n - 1, static_cast<int64_t>(std::ceil(std::max(p.a.y, p.b.y) + reach)));
  for (int64_t y = y0; y <= y1; ++y)
    for (int64_t x = x0; x <= x1; ++x) {
      const double c = coverage(point_segment_distance({x + 0.5, y + 0.5}, p.a, p.b), radius);
      double& v = canvas[y * n + x];
      v = std::max(v, c);
    }
}

void draw_disc(std::vector<double>& canvas, int64_t n, Vec centre, double radius) {
  draw_paddle(canvas, n, Paddle{centre, centre, 0, 0}, radius);
}

void check_options(const PathfinderGeneratorOptions& o) {
  MEGA_CHECK(o.resolution >= 8 && o.resolution <= 4096, "[pathfinder] resolution must be in 8..4096, got ", o.resolution);
  MEGA_CHECK(o.contour_length >= 1 && o.distractor_length >= 1 && o.distractor_snakes >= 0 &&
                 o.single_paddle_tries >= 0 && o.max_paddle_tries >= 1 && o.max_image_tries >= 1,
             "[pathfinder] lengths and tries must be positive (contour_length ", o.contour_length, ")");
  MEGA_CHECK(o.paddle_length > 0 && o.paddle_thickness > 0 && o.marker_radius > 0 && o.seed_distance > 0 &&
                 o.padding >= 0 && o.max_turn_degrees >= 0 && o.max_turn_degrees <= 180,
             "[pathfinder] paddle length, thickness, marker radius and seed distance must be positive and the "
             "turn within 0..180 degrees");
  // A stroke's inked pixels stay 8-connected across the gap only when the gap's two sides both lie
  // within reach - sqrt(2)/2 of the centre line (each point of the path then has its pixel centre inked).
  const double reach = o.paddle_thickness / 2 + 0.5;
  MEGA_CHECK(o.paddle_gap >= 0 && o.paddle_gap <= 2 * (reach - std::numbers::sqrt2 / 2),
             "[pathfinder] paddle_gap ", o.paddle_gap, " breaks a snake apart at thickness ", o.paddle_thickness,
             ": it must lie in [0, ", 2 * (reach - std::numbers::sqrt2 / 2), "]");
}

}  // namespace

PathfinderGeneratorOptions pathfinder_preset(int64_t resolution, const std::string& difficulty) {
  const std::string name = pathfinder_difficulty(difficulty);
  PathfinderGeneratorOptions o;
  o.resolution = resolution;
  o.contour_length = name == "curv_baseline" ? 6 : name == "curv_contour_length_9" ? 9 : 14;
  o.distractor_length = std::max<int64_t>(1, o.contour_length / 3);
  double distractor_paddles = 20;  // LRA's num_distractor_snakes = D / distractor_length
  switch (resolution) {
    case 32:
      o.paddle_length = 2, o.paddle_thickness = 1, o.paddle_gap = 0.5, o.seed_distance = 7, o.marker_radius = 1.5;
      o.max_turn_degrees = 45;  // 14 paddles (35 pixels) must curl to fit in 32 x 32: 30 degrees fails often
      break;
    case 64:
      o.paddle_length = 4, o.paddle_thickness = 1.5, o.paddle_gap = 1, o.seed_distance = 12, o.marker_radius = 2.5;
      o.max_turn_degrees = 45;  // likewise for 14 paddles of 5 pixels in 64 x 64
      distractor_paddles = 22;
      break;
    case 128:
      o.paddle_length = 6, o.paddle_thickness = 2, o.paddle_gap = 1.5, o.seed_distance = 20, o.marker_radius = 3;
      distractor_paddles = 35;
      break;
    case 256:
      o.paddle_length = 10, o.paddle_thickness = 2.5, o.paddle_gap = 2, o.seed_distance = 40, o.marker_radius = 5;
      distractor_paddles = 30;
      break;
    default: fail("[pathfinder] no preset for resolution ", resolution, ": use 32, 64, 128 or 256");
  }
  o.distractor_snakes = static_cast<int64_t>(distractor_paddles / o.distractor_length);
  // Single paddles fill what is left: enough random tries that the image is close to full.
  o.single_paddle_tries = resolution * resolution / 4;
  return o;
}

int64_t pathfinder_label(uint64_t seed, int64_t index) {
  // Stream 0 of the seed: the images use streams 1, 2, ...
  const int64_t first = static_cast<int64_t>(Rng(seed).bits(0, static_cast<uint64_t>(index / 2))[0] & 1);
  return index % 2 == 0 ? first : 1 - first;
}

PathfinderSample generate_pathfinder_sample(const PathfinderGeneratorOptions& o, int64_t label, uint64_t seed,
                                            uint64_t stream) {
  check_options(o);
  MEGA_CHECK(label == 0 || label == 1, "[pathfinder] label must be 0 or 1, got ", label);
  Generator generator(o, seed, stream);
  for (int64_t attempt = 0; attempt < o.max_image_tries; ++attempt) {
    Scene scene(o);
    std::array<Vec, 2> origins, terminals;
    if (!generator.place_targets(scene, origins, terminals)) continue;
    generator.place_distractors(scene);
    // Linsley's rule: one marker on a random target's origin, the other on the far end of the same
    // target (label 1) or of the other target (label 0).
    const int64_t origin_snake = generator.below(2);
    const int64_t terminal_snake = label == 1 ? origin_snake : 1 - origin_snake;
    const int64_t n = o.resolution;
    std::vector<double> canvas(static_cast<size_t>(n * n), 0.0);
    for (const Paddle& p : scene.paddles()) draw_paddle(canvas, n, p, o.paddle_thickness / 2);
    const Vec marked[2] = {origins[origin_snake], terminals[terminal_snake]};
    for (const Vec& m : marked) draw_disc(canvas, n, m, o.marker_radius);
    PathfinderSample sample;
    sample.label = label;
    sample.image.width = sample.image.height = n;
    sample.image.pixels.resize(canvas.size());
    for (size_t i = 0; i < canvas.size(); ++i) sample.image.pixels[i] = static_cast<uint8_t>(std::lround(canvas[i] * 255));
    for (int k = 0; k < 2; ++k) sample.markers[k] = {marked[k].x, marked[k].y};
    return sample;
  }
  fail("[pathfinder] could not place two snakes of ", o.contour_length, " paddles in a ", o.resolution, "x",
       o.resolution, " image in ", o.max_image_tries, " tries: shorten the snakes or the seed distance");
}

void write_pathfinder_dataset(const std::string& root, const std::string& difficulty,
                              const PathfinderGeneratorOptions& o, int64_t count, uint64_t seed,
                              int64_t images_per_folder) {
  check_options(o);
  MEGA_CHECK(count >= 1 && images_per_folder >= 1, "[pathfinder] need count >= 1 and images_per_folder >= 1");
  const fs::path final_dir = pathfinder_dir(root, o.resolution, difficulty);
  MEGA_CHECK(!fs::exists(final_dir), "[pathfinder] ", final_dir.string(),
             " already exists: remove it or choose another --out");
  fs::path work = final_dir.parent_path() / ".";  // the hidden sibling ".<difficulty>.partial"
  work += final_dir.filename();
  work += ".partial";
  fs::remove_all(work);  // what an interrupted run left
  const int64_t folders = (count + images_per_folder - 1) / images_per_folder;
  fs::create_directories(work / "metadata");
  for (int64_t f = 0; f < folders; ++f) fs::create_directories(work / "imgs" / std::to_string(f));

  std::vector<int64_t> labels(static_cast<size_t>(count));
  std::mutex error_mutex;
  std::exception_ptr error;
  // Exceptions may not leave an OpenMP region: the first is kept and rethrown after it.
  parallel_for(count, 16, [&](int64_t begin, int64_t end) {
    try {
      for (int64_t i = begin; i < end; ++i) {
        labels[i] = pathfinder_label(seed, i);
        PathfinderSample sample = generate_pathfinder_sample(o, labels[i], seed, static_cast<uint64_t>(i) + 1);
        fs::path file = work / "imgs" / std::to_string(i / images_per_folder) / "sample_";
        file += std::to_string(i % images_per_folder);
        file += ".png";
        write_png_grey(file.string(), sample.image);
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  });
  if (error) std::rethrow_exception(error);

  for (int64_t f = 0; f < folders; ++f) {
    const fs::path file = work / "metadata" / (std::to_string(f) + ".npy");
    std::ofstream out(file, std::ios::binary);
    MEGA_CHECK(out, "[pathfinder] cannot create ", file.string());
    for (int64_t i = f * images_per_folder; i < std::min(count, (f + 1) * images_per_folder); ++i) {
      const int64_t k = i % images_per_folder;
      out << "imgs/" << f << " sample_" << k << ".png " << k << ' ' << labels[i] << ' ' << o.max_turn_degrees
          << ' ' << o.contour_length << ' ' << o.distractor_length << ' ' << o.paddle_length << ' '
          << o.paddle_thickness << ' ' << o.paddle_gap << " 1\n";
    }
    MEGA_CHECK(out.flush(), "[pathfinder] cannot write ", file.string());
  }
  fs::rename(work, final_dir);
}

}  // namespace mega
