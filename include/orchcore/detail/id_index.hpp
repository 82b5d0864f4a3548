// Open-addressing hash map from task id to a slot key, used by the queues to
// detect duplicate ids and to cancel by id in O(1). Linear probing with
// backward-shift deletion (no tombstones, so long-lived queues with heavy
// churn keep short probe sequences). Not thread-safe: the owner locks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

namespace orchcore::detail {

/// `Value` is an unsigned integer naming where the task is; its maximum is
/// npos (never stored).
template <class Key, class Hash = std::hash<Key>, class Value = std::uint32_t>
class id_index {
public:
    static constexpr Value npos = static_cast<Value>(~Value{0});

    id_index() { rehash(16); }

    std::size_t size() const noexcept { return size_; }

    /// Value for key, or npos.
    Value find(const Key& key) const {
        const std::size_t h = hash_of(key);
        for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
            const slot& s = slots_[i];
            if (s.value == npos) return npos;
            if (s.hash == h && s.key == key) return s.value;
        }
    }

    /// Inserts key -> value unless key is present. Returns false if present.
    bool insert(const Key& key, Value value) {
        if ((size_ + 1) * 2 > slots_.size()) rehash(slots_.size() * 2);
        const std::size_t h = hash_of(key);
        for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
            slot& s = slots_[i];
            if (s.value == npos) {
                s.hash = h;
                s.key = key;
                s.value = value;
                ++size_;
                return true;
            }
            if (s.hash == h && s.key == key) return false;
        }
    }

    /// Removes key. Returns false if absent.
    bool erase(const Key& key) {
        const std::size_t h = hash_of(key);
        std::size_t i = h & mask_;
        for (;; i = (i + 1) & mask_) {
            const slot& s = slots_[i];
            if (s.value == npos) return false;
            if (s.hash == h && s.key == key) break;
        }
        // Backward-shift: pull later members of the probe run into the hole
        // whenever their home position does not lie in (hole, j].
        std::size_t hole = i;
        for (std::size_t j = (hole + 1) & mask_;; j = (j + 1) & mask_) {
            slot& s = slots_[j];
            if (s.value == npos) break;
            const std::size_t home = s.hash & mask_;
            const bool home_in_range = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
            if (!home_in_range) {
                slots_[hole] = std::move(s);
                hole = j;
            }
        }
        slots_[hole].value = npos;
        slots_[hole].key = Key{};
        --size_;
        return true;
    }

private:
    struct slot {
        std::size_t hash = 0;
        Key key{};
        Value value = npos;
    };

    static std::size_t hash_of(const Key& key) {
        // std::hash of integers is the identity in libstdc++; mix so that
        // sequential ids spread over the table.
        std::uint64_t x = static_cast<std::uint64_t>(Hash{}(key));
        x ^= x >> 33;
        x *= 0xff51afd7ed558ccdULL;
        x ^= x >> 33;
        return static_cast<std::size_t>(x);
    }

    void rehash(std::size_t n) {
        std::vector<slot> old = std::exchange(slots_, std::vector<slot>(n));
        mask_ = n - 1;
        for (slot& s : old) {
            if (s.value == npos) continue;
            for (std::size_t i = s.hash & mask_;; i = (i + 1) & mask_) {
                if (slots_[i].value == npos) {
                    slots_[i] = std::move(s);
                    break;
                }
            }
        }
    }

    std::vector<slot> slots_;
    std::size_t mask_ = 0;
    std::size_t size_ = 0;
};

}  // namespace orchcore::detail
