// The task table's map: entries by task id, each id stored once. A key is
// not a copy of the id but the address of the entry's own (rec.id), which
// a hash node never moves; lookups take any string view. An entry's id
// stays as it is while the entry is in the table.
#pragma once

#include "task_entry.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace orchcore::detail {

class task_table {
    struct key {
        // Points at the entry's rec.id once the entry is in place (before
        // that, at an equal string of the inserter's). Mutable: repointing
        // it to an equal string changes neither its hash nor its order.
        mutable const std::string* id;
    };
    static std::uint64_t mix(std::uint64_t h) noexcept {
        h ^= h >> 32;
        h *= 0xd6e8feb86659fd93ULL;
        return h ^ (h >> 32);
    }
    static std::size_t hash_id(std::string_view s) noexcept {
        std::uint64_t h = 0x9e3779b97f4a7c15ULL ^ s.size();
        const char* p = s.data();
        std::size_t n = s.size();
        for (; n >= 8; p += 8, n -= 8) {
            std::uint64_t w;
            std::memcpy(&w, p, 8);
            h = mix(h ^ w);
        }
        if (n > 0) {
            std::uint64_t w = 0;
            for (std::size_t i = 0; i < n; ++i) w |= std::uint64_t(static_cast<unsigned char>(p[i])) << (8 * i);
            h = mix(h ^ w);
        }
        return static_cast<std::size_t>(h);
    }
    static std::string_view view(std::string_view s) noexcept { return s; }
    static std::string_view view(const key& k) noexcept { return *k.id; }
    // The hash is not kept in a node, so walking a bucket hashes ids: this
    // one reads eight bytes at a time, inline (ids are short: "task-<n>").
    struct hash {
        using is_transparent = void;
        template <class K>
        std::size_t operator()(const K& k) const noexcept {
            return hash_id(view(k));
        }
    };
    struct equal {
        using is_transparent = void;
        template <class A, class B>
        bool operator()(const A& a, const B& b) const noexcept {
            return view(a) == view(b);
        }
    };
    using map = std::unordered_map<key, task_entry, hash, equal>;

public:
    using iterator = map::iterator;
    using const_iterator = map::const_iterator;

    iterator begin() noexcept { return m_.begin(); }
    iterator end() noexcept { return m_.end(); }
    const_iterator begin() const noexcept { return m_.begin(); }
    const_iterator end() const noexcept { return m_.end(); }
    std::size_t size() const noexcept { return m_.size(); }
    bool empty() const noexcept { return m_.empty(); }

    iterator find(std::string_view id) { return m_.find(id); }
    const_iterator find(std::string_view id) const { return m_.find(id); }
    std::size_t count(std::string_view id) const { return m_.count(id); }
    task_entry& at(std::string_view id) {
        auto it = find(id);
        if (it == end()) throw std::out_of_range("task_table::at: no such task");
        return it->second;
    }

    // A new empty entry whose record has the id `id`, unless the table has
    // one with that id already (then that one, and false).
    std::pair<iterator, bool> try_emplace(const std::string& id) {
        auto [it, inserted] = m_.try_emplace(key{&id});
        if (inserted) adopt(it, id);
        return {it, inserted};
    }
    // Puts `t` in under its id, in place of an entry with that id.
    iterator insert_or_assign(task_entry t) {
        auto [it, inserted] = m_.try_emplace(key{&t.rec.id});
        it->second = std::move(t);
        it->first.id = &it->second.rec.id;
        return it;
    }

    iterator erase(iterator it) { return m_.erase(it); }
    std::size_t erase(std::string_view id) {
        auto it = find(id);
        if (it == end()) return 0;
        m_.erase(it);
        return 1;
    }

private:
    // The new entry at `it` takes `id` as its own and its key points there.
    void adopt(iterator it, const std::string& id) {
        try {
            it->second.rec.id = id;
        } catch (...) {
            m_.erase(it);
            throw;
        }
        it->first.id = &it->second.rec.id;
    }

    map m_;
};

}  // namespace orchcore::detail
