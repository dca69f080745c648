// The HTML run report: reading run folders, inline-SVG plots, tables.
#include "recipes/report.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/error.h"
#include "recipes/metrics.h"

namespace fs = std::filesystem;

namespace mega {

// ---- reading a run folder ----

namespace {

std::string scalar_text(const YAML::Node& node) {
  if (node.IsNull()) return "null";
  if (node.IsScalar()) return node.Scalar();
  YAML::Emitter out;
  out << YAML::Flow << node;
  return out.c_str();
}

void flatten(const YAML::Node& node, const std::string& prefix, std::vector<std::pair<std::string, std::string>>& out) {
  if (node.IsMap()) {
    for (const auto& item : node) {
      const std::string key = item.first.as<std::string>();
      flatten(item.second, prefix.empty() ? key : prefix + "." + key, out);
    }
  } else {
    out.emplace_back(prefix, scalar_text(node));
  }
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  MEGA_CHECK(in.good(), "cannot read '", path.string(), "'");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

RunData read_run(const std::string& dir) {
  MEGA_CHECK(fs::is_directory(dir), "run folder '", dir, "' does not exist (pass the output_dir of `mega train`)");
  RunData run;
  run.dir = dir;
  run.label = fs::path(dir).lexically_normal().filename().string();
  if (run.label.empty()) run.label = fs::path(dir).lexically_normal().parent_path().filename().string();
  if (run.label.empty()) run.label = dir;

  const fs::path metrics = fs::path(dir) / "metrics.jsonl";
  if (!fs::exists(metrics)) {
    run.notes.push_back("no metrics.jsonl yet");
  } else {
    std::vector<std::string> lines;
    std::istringstream in(read_text(metrics));
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    for (size_t i = 0; i < lines.size(); ++i) {
      if (lines[i].empty()) continue;
      nlohmann::json row = nlohmann::json::parse(lines[i], nullptr, /*allow_exceptions=*/false);
      const bool valid = row.is_object() && row.contains("step") && row["step"].is_number_integer();
      if (!valid && i + 1 == lines.size()) {
        // The trainer appends a line at a time: a run still going (or killed) may leave half a line.
        run.notes.push_back(metrics.string() + ": last line (" + std::to_string(i + 1) +
                            ") is incomplete and was ignored; the run may still be writing it");
        break;
      }
      MEGA_CHECK(valid, metrics.string(), " line ", i + 1, ": not a JSON object with an integer \"step\"");
      (row.contains("split") ? run.eval_rows : run.train_rows).push_back(std::move(row));
    }
    if (run.train_rows.empty() && run.eval_rows.empty()) run.notes.push_back("metrics.jsonl has no rows yet");
  }

  const fs::path recipe = fs::path(dir) / "recipe.yaml";
  if (!fs::exists(recipe)) {
    run.notes.push_back("no recipe.yaml");
  } else {
    run.recipe_text = read_text(recipe);
    try {
      flatten(YAML::Load(run.recipe_text), "", run.recipe);
    } catch (const YAML::Exception& e) {
      fail(recipe.string(), ": not valid YAML: ", e.what());
    }
  }
  return run;
}

// ---- small helpers ----

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::vector<double> ema_smooth(const std::vector<double>& values, double weight) {
  std::vector<double> out;
  out.reserve(values.size());
  double last = 0;
  int count = 0;
  for (double v : values) {
    if (!std::isfinite(v)) {
      out.push_back(v);
      continue;
    }
    last = last * weight + (1 - weight) * v;
    ++count;
    const double debias = 1 - std::pow(weight, count);
    out.push_back(debias > 0 ? last / debias : v);
  }
  return out;
}

namespace {

std::string number(double v, int digits = 4) {
  if (!std::isfinite(v)) return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
  char text[32];
  std::snprintf(text, sizeof text, "%.*g", digits, v);
  return text;
}

std::string coord(double v) {
  char text[24];
  std::snprintf(text, sizeof text, "%.1f", v);
  return text;
}

// Tableau's ten colours: distinct on screen and in print.
const char* run_color(size_t i) {
  static const char* colors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                 "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  return colors[i % 10];
}

// ---- plots ----

struct Series {
  std::string label, color;
  std::vector<std::pair<double, double>> points;  // (x, y)
  bool faint = false;    // the raw curve under a smoothed one: drawn light, not in the legend
  bool markers = false;  // sparse series (evaluations): a dot at each point
};

struct Axis {
  double lo = 0, hi = 1;
  bool log = false;
  std::vector<double> ticks;
};

// Linear ticks at 1, 2 or 5 times a power of ten, about five of them; the range widens to whole ticks.
Axis linear_axis(double lo, double hi) {
  if (hi <= lo) {
    const double pad = lo == 0 ? 1 : std::abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const double raw = (hi - lo) / 5;
  const double magnitude = std::pow(10, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * magnitude >= raw) {
      step = m * magnitude;
      break;
    }
  Axis axis;
  axis.lo = std::floor(lo / step) * step;
  axis.hi = std::ceil(hi / step) * step;
  for (double t = axis.lo; t <= axis.hi + step * 1e-6; t += step)
    axis.ticks.push_back(std::abs(t) < step * 1e-9 ? 0 : std::round(t / step) * step);
  return axis;
}

// Log ticks at the decades, with 2 and 5 (or every digit) between them when the range spans few decades.
Axis log_axis(double lo, double hi) {
  Axis axis;
  axis.log = true;
  if (hi <= lo) {
    lo /= 2;
    hi *= 2;
  }
  const double first = std::floor(std::log10(lo)), last = std::ceil(std::log10(hi));
  const double decades = last - first;
  std::vector<double> mantissas = decades <= 1 ? std::vector<double>{1, 2, 3, 4, 5, 6, 7, 8, 9}
                                  : decades <= 3 ? std::vector<double>{1, 2, 5}
                                                 : std::vector<double>{1};
  axis.lo = lo;
  axis.hi = hi;
  for (double e = first; e <= last; ++e)
    for (double m : mantissas) {
      const double t = m * std::pow(10, e);
      if (t >= lo * 0.999 && t <= hi * 1.001) axis.ticks.push_back(t);
    }
  if (axis.ticks.size() < 3) {
    // A range narrower than the digits of a decade (a loss from 2.3 to 1.8): linear ticks placed on the
    // log axis, which widens to whole ticks when they stay positive.
    const Axis linear = linear_axis(lo, hi);
    if (linear.lo > 0) axis.lo = linear.lo, axis.hi = linear.hi;
    axis.ticks.clear();
    for (double t : linear.ticks)
      if (t >= axis.lo && t <= axis.hi && t > 0) axis.ticks.push_back(t);
  }
  return axis;
}

struct PlotSpec {
  std::string title, x_label, y_label;
  Scale y_scale = Scale::Linear;
};

bool use_log(Scale scale, double lo, double hi) {
  if (scale == Scale::Linear || lo <= 0) return false;
  return scale == Scale::Log || hi / lo > 20;
}

std::string svg_plot(const PlotSpec& spec, const std::vector<Series>& series) {
  constexpr double kWidth = 560, kPlotHeight = 260, kLeft = 68, kRight = 16, kTop = 30;
  double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_hi = -INFINITY;
  for (const Series& s : series)
    for (auto [x, y] : s.points) {
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      x_lo = std::min(x_lo, x), x_hi = std::max(x_hi, x);
      y_lo = std::min(y_lo, y), y_hi = std::max(y_hi, y);
    }
  if (x_lo > x_hi) return "";  // nothing to draw
  const bool log_y = use_log(spec.y_scale, y_lo, y_hi);
  const Axis xa = linear_axis(x_lo, x_hi);
  const Axis ya = log_y ? log_axis(y_lo, y_hi) : linear_axis(y_lo, y_hi);
  const double plot_w = kWidth - kLeft - kRight;
  auto px = [&](double x) { return kLeft + (x - xa.lo) / (xa.hi - xa.lo) * plot_w; };
  auto py = [&](double y) {
    const double f = log_y ? (std::log(y) - std::log(ya.lo)) / (std::log(ya.hi) - std::log(ya.lo))
                           : (y - ya.lo) / (ya.hi - ya.lo);
    return kTop + (1 - f) * kPlotHeight;
  };

  // The legend sits under the x label, wrapping into rows.
  std::vector<const Series*> legend;
  for (const Series& s : series) {
    if (s.faint) continue;
    bool seen = false;
    for (const Series* l : legend) seen = seen || l->label == s.label;
    if (!seen) legend.push_back(&s);
  }
  std::ostringstream items;
  double lx = kLeft, ly = kTop + kPlotHeight + 52;
  for (const Series* s : legend) {
    const double w = 28 + 7.0 * static_cast<double>(std::min<size_t>(s->label.size(), 40));
    if (lx + w > kWidth && lx > kLeft) lx = kLeft, ly += 18;
    items << "<line x1='" << coord(lx) << "' y1='" << coord(ly - 4) << "' x2='" << coord(lx + 18) << "' y2='"
          << coord(ly - 4) << "' stroke='" << s->color << "' stroke-width='3'/>"
          << "<text x='" << coord(lx + 22) << "' y='" << coord(ly) << "'>"
          << html_escape(s->label.size() > 40 ? s->label.substr(0, 39) + "..." : s->label) << "</text>";
    lx += w;
  }
  const double height = ly + 12;

  static int plot_id = 0;
  const std::string clip = "clip" + std::to_string(++plot_id);
  std::ostringstream svg;
  svg << "<svg class='plot' xmlns='http://www.w3.org/2000/svg' width='" << kWidth << "' height='" << coord(height)
      << "' viewBox='0 0 " << kWidth << " " << coord(height) << "' role='img'>"
      << "<title>" << html_escape(spec.title) << "</title>"
      << "<clipPath id='" << clip << "'><rect x='" << kLeft << "' y='" << kTop << "' width='" << plot_w
      << "' height='" << kPlotHeight << "'/></clipPath>"
      << "<text class='title' x='" << kLeft << "' y='18'>" << html_escape(spec.title)
      << (log_y ? " (log scale)" : "") << "</text>"
      << "<rect class='frame' x='" << kLeft << "' y='" << kTop << "' width='" << plot_w << "' height='"
      << kPlotHeight << "'/>";
  for (double t : xa.ticks) {
    svg << "<line class='grid' x1='" << coord(px(t)) << "' y1='" << kTop << "' x2='" << coord(px(t)) << "' y2='"
        << kTop + kPlotHeight << "'/>"
        << "<text class='tick' x='" << coord(px(t)) << "' y='" << kTop + kPlotHeight + 16
        << "' text-anchor='middle'>" << number(t, 6) << "</text>";
  }
  for (double t : ya.ticks) {
    svg << "<line class='grid' x1='" << kLeft << "' y1='" << coord(py(t)) << "' x2='" << kLeft + plot_w
        << "' y2='" << coord(py(t)) << "'/>"
        << "<text class='tick' x='" << kLeft - 6 << "' y='" << coord(py(t) + 4) << "' text-anchor='end'>"
        << number(t, 4) << "</text>";
  }
  svg << "<text class='label' x='" << coord(kLeft + plot_w / 2) << "' y='" << kTop + kPlotHeight + 34
      << "' text-anchor='middle'>" << html_escape(spec.x_label) << "</text>"
      << "<text class='label' transform='translate(14," << coord(kTop + kPlotHeight / 2)
      << ") rotate(-90)' text-anchor='middle'>" << html_escape(spec.y_label) << "</text>";
  svg << "<g clip-path='url(#" << clip << ")'>";
  for (const Series& s : series) {
    std::ostringstream points;
    std::vector<std::pair<double, double>> dots;
    for (auto [x, y] : s.points) {
      if (!std::isfinite(x) || !std::isfinite(y) || (log_y && y <= 0)) continue;
      points << coord(px(x)) << "," << coord(py(y)) << " ";
      dots.emplace_back(px(x), py(y));
    }
    svg << "<polyline fill='none' stroke='" << s.color << "' stroke-width='" << (s.faint ? "1" : "2")
        << "' stroke-opacity='" << (s.faint ? "0.3" : "1") << "' points='" << points.str() << "'/>";
    if (s.markers)
      for (auto [x, y] : dots)
        svg << "<circle cx='" << coord(x) << "' cy='" << coord(y) << "' r='3' fill='" << s.color << "'/>";
  }
  svg << "</g>" << items.str() << "</svg>";
  return svg.str();
}

// ---- reading series out of rows ----

std::vector<std::pair<double, double>> column(const std::vector<nlohmann::json>& rows, const std::string& x_key,
                                              const std::string& y_key) {
  std::vector<std::pair<double, double>> out;
  for (const nlohmann::json& row : rows) {
    const auto x = row.find(x_key), y = row.find(y_key);
    if (x == row.end() || y == row.end() || !x->is_number() || !y->is_number()) continue;
    out.emplace_back(x->get<double>(), y->get<double>());
  }
  return out;
}

bool higher_is_better(const std::string& metric) {
  return metric.find("acc") != std::string::npos || metric.find("f1") != std::string::npos;
}

std::string utc_now() {
  std::time_t now = std::time(nullptr);
  char text[40];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&now));
  return text;
}

const char* kStyle = R"(
body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1180px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 28px; border-bottom: 1px solid #ccc; }
.sub { color: #666; font-size: 13px; }
.legend span.swatch { display: inline-block; width: 14px; height: 14px; margin: 0 6px -2px 14px; border-radius: 2px; }
.plots { display: flex; flex-wrap: wrap; gap: 8px; }
svg.plot { background: #fff; border: 1px solid #e4e4e4; font-size: 11px; }
svg .title { font-size: 13px; font-weight: bold; } svg .label { font-size: 12px; fill: #333; }
svg .tick { fill: #555; } svg .grid { stroke: #ececec; } svg .frame { fill: none; stroke: #999; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.best { font-weight: bold; } td.run { white-space: nowrap; }
tr.diff td { background: #fff3b0; } tr.diff td.key { font-weight: bold; }
.notes { color: #a33; font-size: 13px; } pre { background: #f7f7f7; padding: 8px; font-size: 12px; overflow-x: auto; }
details { margin: 6px 0; }
)";

}  // namespace

// ---- the page ----

std::string render_report(const std::vector<RunData>& input_runs, const std::string& machine,
                          const ReportOptions& options) {
  std::vector<RunData> runs = input_runs;
  // Two runs of the same folder name (a/run, b/run) are told apart by their full paths.
  for (RunData& run : runs) {
    int same = 0;
    for (const RunData& other : input_runs) same += other.label == run.label;
    if (same > 1) run.label = run.dir;
  }
  std::ostringstream html;
  html << "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>mega report: ";
  for (size_t i = 0; i < runs.size(); ++i) html << (i ? ", " : "") << html_escape(runs[i].label);
  html << "</title><style>" << kStyle << "</style></head><body>\n"
       << "<h1>mega training report</h1><div class='sub'>generated " << utc_now() << " from "
       << runs.size() << " run folder" << (runs.size() == 1 ? "" : "s") << "</div>\n";

  html << "<p class='legend'>";
  for (size_t i = 0; i < runs.size(); ++i)
    html << "<span class='swatch' style='background:" << run_color(i) << "'></span>" << html_escape(runs[i].label)
         << " <span class='sub'>(" << html_escape(runs[i].dir) << ")</span>";
  html << "</p>\n";
  for (const RunData& run : runs)
    for (const std::string& note : run.notes)
      html << "<p class='notes'>" << html_escape(run.label) << ": " << html_escape(note) << "</p>\n";

  // ---- final and best metrics ----
  std::vector<std::string> metrics;  // eval metric keys in first-seen order: val_loss, val_accuracy, test_...
  for (const RunData& run : runs)
    for (const nlohmann::json& row : run.eval_rows)
      for (const auto& [key, value] : row.items())
        if (key != "step" && key != "split" && key != "wall_time" && value.is_number() &&
            std::find(metrics.begin(), metrics.end(), key) == metrics.end())
          metrics.push_back(key);
  html << "<h2>Final and best metrics</h2>\n<table><tr><th>run</th><th>steps</th><th>final train loss</th>"
       << "<th>mean tokens/s</th><th>wall time</th>";
  for (const std::string& m : metrics)
    html << "<th>" << html_escape(m) << " final</th><th>" << html_escape(m) << " best (step)</th>";
  html << "</tr>\n";
  // The best run of each metric column is bold.
  std::map<std::string, double> best_of_all;
  std::vector<std::map<std::string, std::pair<double, int64_t>>> best(runs.size()), last(runs.size());
  for (size_t i = 0; i < runs.size(); ++i)
    for (const std::string& m : metrics)
      for (auto [step, value] : column(runs[i].eval_rows, "step", m)) {
        last[i][m] = {value, static_cast<int64_t>(step)};
        const bool better = !best[i].count(m) || (higher_is_better(m) ? value > best[i][m].first
                                                                       : value < best[i][m].first);
        if (better) best[i][m] = {value, static_cast<int64_t>(step)};
        const bool overall = !best_of_all.count(m) || (higher_is_better(m) ? value > best_of_all[m]
                                                                              : value < best_of_all[m]);
        if (overall) best_of_all[m] = value;
      }
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunData& run = runs[i];
    const auto losses = column(run.train_rows, "step", "loss");
    const auto speed = column(run.train_rows, "step", "tokens_per_s");
    const auto times = column(run.train_rows, "step", "wall_time");
    double mean_speed = 0;
    for (auto [s, v] : speed) mean_speed += v / static_cast<double>(speed.size());
    int64_t steps = 0;
    for (const auto* rows : {&run.train_rows, &run.eval_rows})
      for (const nlohmann::json& row : *rows) steps = std::max(steps, row["step"].get<int64_t>());
    html << "<tr><td class='run'><span class='swatch' style='display:inline-block;width:10px;height:10px;background:"
         << run_color(i) << "'></span> " << html_escape(run.label) << "</td><td class='num'>" << steps
         << "</td><td class='num'>" << (losses.empty() ? "" : number(losses.back().second)) << "</td><td class='num'>"
         << (speed.empty() ? "" : std::to_string(std::lround(mean_speed))) << "</td><td class='num'>"
         << (times.size() < 2 ? "" : format_duration(times.back().second - times.front().second)) << "</td>";
    for (const std::string& m : metrics) {
      if (!last[i].count(m)) {
        html << "<td></td><td></td>";
        continue;
      }
      const bool is_best = runs.size() > 1 && best[i][m].first == best_of_all[m];
      html << "<td class='num'>" << number(last[i][m].first) << "</td><td class='num" << (is_best ? " best" : "")
           << "'>" << number(best[i][m].first) << " (" << best[i][m].second << ")</td>";
    }
    html << "</tr>\n";
  }
  html << "</table>\n";

  // ---- plots ----
  html << "<h2>Training</h2>\n<div class='plots'>";
  auto train_plot = [&](const std::string& key, const std::string& title, const std::string& y_label,
                        const std::string& x_key, const std::string& x_label, Scale scale, bool smooth,
                        double x_divisor) {
    std::vector<Series> series;
    for (size_t i = 0; i < runs.size(); ++i) {
      auto points = column(runs[i].train_rows, x_key, key);
      if (points.empty()) continue;
      if (x_key == "wall_time") {
        const double start = points.front().first;
        for (auto& p : points) p.first = (p.first - start) / x_divisor;
      }
      if (smooth) {
        series.push_back({runs[i].label, run_color(i), points, /*faint=*/true, false});
        std::vector<double> ys;
        for (auto [x, y] : points) ys.push_back(y);
        ys = ema_smooth(ys, options.smoothing);
        for (size_t j = 0; j < points.size(); ++j) points[j].second = ys[j];
      }
      series.push_back({runs[i].label, run_color(i), points, false, false});
    }
    html << svg_plot({title, x_label, y_label, scale}, series);
  };
  const std::string smoothed = "training loss (faint: raw; solid: EMA " + number(options.smoothing, 2) + ")";
  train_plot("loss", smoothed, "loss", "step", "step", options.loss_scale, true, 1);
  // Wall time in the unit that keeps the axis numbers short.
  double longest = 0;
  for (const RunData& run : runs) {
    const auto times = column(run.train_rows, "step", "wall_time");
    if (times.size() >= 2) longest = std::max(longest, times.back().second - times.front().second);
  }
  if (longest > 0) {
    const auto [divisor, unit] = longest > 7200 ? std::pair{3600.0, "hours"}
                                 : longest > 120 ? std::pair{60.0, "minutes"}
                                                 : std::pair{1.0, "seconds"};
    train_plot("loss", smoothed + " against wall time", "loss", "wall_time",
               std::string("wall time since the first logged step (") + unit + ")", options.loss_scale, true,
               divisor);
  }
  train_plot("lr", "learning rate", "learning rate", "step", "step", Scale::Linear, false, 1);
  train_plot("grad_norm", "gradient norm (before clipping)", "global L2 norm", "step", "step", Scale::Auto, false, 1);
  train_plot("tokens_per_s", "throughput", "tokens/s (non-padding)", "step", "step", Scale::Linear, false, 1);
  html << "</div>\n";

  if (!metrics.empty()) {
    html << "<h2>Evaluation</h2>\n<div class='plots'>";
    for (const std::string& m : metrics) {
      std::vector<Series> series;
      for (size_t i = 0; i < runs.size(); ++i) {
        auto points = column(runs[i].eval_rows, "step", m);
        if (!points.empty()) series.push_back({runs[i].label, run_color(i), points, false, /*markers=*/true});
      }
      const bool loss_like = m.find("loss") != std::string::npos;
      html << svg_plot({m, "step", m, loss_like ? options.loss_scale : Scale::Linear}, series);
    }
    html << "</div>\n";
  }

  // ---- recipes ----
  html << "<h2>Resolved recipes</h2>\n";
  std::vector<std::string> keys;
  std::vector<std::map<std::string, std::string>> values(runs.size());
  for (size_t i = 0; i < runs.size(); ++i)
    for (const auto& [key, value] : runs[i].recipe) {
      values[i][key] = value;
      if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
    }
  std::vector<std::string> differing;
  for (const std::string& key : keys) {
    std::set<std::string> seen;
    for (size_t i = 0; i < runs.size(); ++i) seen.insert(values[i].count(key) ? values[i][key] : "(absent)");
    if (seen.size() > 1) differing.push_back(key);
  }
  if (runs.size() > 1) {
    html << "<p>" << differing.size() << " key" << (differing.size() == 1 ? "" : "s")
         << " differ between the runs (highlighted)";
    for (size_t i = 0; i < differing.size(); ++i)
      html << (i ? ", " : ": ") << "<b>" << html_escape(differing[i]) << "</b>";
    html << "</p>\n";
  }
  auto recipe_table = [&](const std::vector<std::string>& rows) {
    html << "<table><tr><th>key</th>";
    for (size_t i = 0; i < runs.size(); ++i)
      html << "<th style='border-top:3px solid " << run_color(i) << "'>" << html_escape(runs[i].label) << "</th>";
    html << "</tr>\n";
    for (const std::string& key : rows) {
      const bool differs = std::find(differing.begin(), differing.end(), key) != differing.end();
      html << "<tr" << (differs ? " class='diff'" : "") << "><td class='key'>" << html_escape(key) << "</td>";
      for (size_t i = 0; i < runs.size(); ++i)
        html << "<td>" << (values[i].count(key) ? html_escape(values[i][key]) : "<i>absent</i>") << "</td>";
      html << "</tr>\n";
    }
    html << "</table>\n";
  };
  if (!differing.empty()) recipe_table(differing);
  html << "<details open><summary>every key (" << keys.size() << ")</summary>\n";
  recipe_table(keys);
  html << "</details>\n";
  for (const RunData& run : runs)
    if (!run.recipe_text.empty())
      html << "<details><summary>" << html_escape(run.label) << ": recipe.yaml as written</summary><pre>"
           << html_escape(run.recipe_text) << "</pre></details>\n";

  html << "<h2>Machine and versions</h2>\n<p class='sub'>where this report was made (`mega version`)</p><pre>"
       << html_escape(machine) << "</pre>\n</body></html>\n";
  return html.str();
}

}  // namespace mega
