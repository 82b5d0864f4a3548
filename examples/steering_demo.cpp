// steering_demo: talking to tasks while they run.
//
// Part 1, a multi-turn "agent" (plain handler). Each turn reads the
// messages steered to it since the last turn (ctx.receive()), reports
// progress, and asks to run again 100ms later (ctx.continue_later()) until
// it reads "stop". Between turns the task is back in the queue, so it does
// not hold a worker while it waits. Undelivered messages stay in the task's
// mailbox for the next turn.
//
// Part 2, a coroutine handler (register_async_handler) that awaits messages
// with co_await ctx.async_receive_for(...) and answers each one, until "stop".
#include <orchcore/orchcore.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

const auto t_start = std::chrono::steady_clock::now();

long long ms_since_start() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t_start).count();
}

void steer(orchcore::coordinator& c, const std::string& id, std::vector<std::string> msgs) {
    std::printf("[%5lld ms] main  -> %s:", ms_since_start(), id.c_str());
    for (const auto& m : msgs) std::printf(" \"%s\"", m.c_str());
    std::printf("\n");
    c.steer(id, std::move(msgs));
}

}  // namespace

int main() {
    orchcore::coordinator c{{.scaling = {.min_workers = 2, .max_workers = 2}}};

    // ---------------------------------------------------------------- agent
    // The agent's memory between turns. Turns of one task never overlap, so
    // one turn's writes are visible to the next; the mutex is for main,
    // which reads it at the end.
    std::mutex notes_mu;
    std::vector<std::string> notes;

    c.register_handler("agent", [&](orchcore::task_context& ctx) -> std::string {
        auto msgs = ctx.receive();
        std::printf("[%5lld ms] agent turn %u on %s: %zu message(s)", ms_since_start(), ctx.turn(),
                    ctx.worker_id().c_str(), msgs.size());
        for (const auto& m : msgs) std::printf(" \"%s\"", m.c_str());
        std::printf("\n");

        std::lock_guard lk(notes_mu);
        for (auto& m : msgs) {
            if (m == "stop") {
                std::string summary = "agent stopped after " + std::to_string(ctx.turn() + 1) + " turns; notes:";
                for (const auto& n : notes) summary += " [" + n + "]";
                return summary;
            }
            notes.push_back(std::move(m));
        }
        ctx.report_progress(std::min(0.9, 0.1 * (ctx.turn() + 1)), std::to_string(notes.size()) + " notes");
        ctx.continue_later(100ms);  // yield the worker; run again in 100ms
        return {};                  // ignored for a continued turn
    });

    // Progress and continuation events of the tasks, printed live.
    auto sub = c.events().subscribe(orchcore::event_channel::tasks, [](const orchcore::event& e) {
        if (e.kind == orchcore::event_kind::task_progress)
            std::printf("[%5lld ms]   event %s %s: %.0f%% (%s)\n", ms_since_start(),
                        std::string(orchcore::to_string(e.kind)).c_str(), e.task_id.c_str(), e.progress * 100,
                        e.detail.c_str());
        else if (e.kind == orchcore::event_kind::task_completed)
            std::printf("[%5lld ms]   event %s %s\n", ms_since_start(),
                        std::string(orchcore::to_string(e.kind)).c_str(), e.task_id.c_str());
    });

    std::printf("== part 1: a multi-turn agent steered by main\n");
    auto agent = c.submit_async("agent", "", {.id = "agent-1", .timeout = 10s});
    std::this_thread::sleep_for(250ms);
    steer(c, "agent-1", {"read README.md"});
    std::this_thread::sleep_for(250ms);
    steer(c, "agent-1", {"summarise the design", "focus on the coordinator"});
    std::this_thread::sleep_for(250ms);
    steer(c, "agent-1", {"stop"});
    std::printf("[%5lld ms] result: %s\n", ms_since_start(), agent.handle.get().c_str());
    auto rec = agent.handle.wait();
    std::printf("           status %s, turns %u, attempts %u\n\n", std::string(orchcore::to_string(rec.status)).c_str(),
                rec.turns, rec.attempts);

    // ------------------------------------------------------------ coroutine
    c.register_async_handler("chat", [](orchcore::task_context& ctx) -> boost::asio::awaitable<std::string> {
        int answered = 0;
        for (;;) {
            auto msgs = co_await ctx.async_receive_for(2s);  // suspends; no thread is blocked
            if (msgs.empty()) co_return "chat: nobody said anything for 2s";
            for (const auto& m : msgs) {
                if (m == "stop") co_return "chat: answered " + std::to_string(answered) + " message(s)";
                std::printf("[%5lld ms] chat  <- \"%s\"  (answering: \"%zu characters\")\n", ms_since_start(),
                            m.c_str(), m.size());
                ++answered;
            }
        }
    });

    std::printf("== part 2: a coroutine handler awaiting messages\n");
    auto chat = c.submit_async("chat", "", {.id = "chat-1", .timeout = 10s});
    std::this_thread::sleep_for(100ms);
    steer(c, "chat-1", {"hello"});
    std::this_thread::sleep_for(150ms);
    steer(c, "chat-1", {"what is orchcore?", "and steering?"});
    std::this_thread::sleep_for(150ms);
    steer(c, "chat-1", {"stop"});
    std::printf("[%5lld ms] result: %s\n", ms_since_start(), chat.handle.get().c_str());

    sub.reset();
    c.stop();
}
