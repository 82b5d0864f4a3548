// A consumer of the Redis component that calls only Redis APIs (parsing a
// URL needs no server). Links orchcore::redis alone.
#include <orchcore/redis/redis.hpp>

int main() {
    const auto o = orchcore::redis_options::from_url("redis://127.0.0.1:6390/2");
    if (o.host != "127.0.0.1" || o.port != 6390) return 1;
    try {
        (void)orchcore::redis_options::from_url("http://nope");
        return 2;
    } catch (const orchcore::invalid_argument& ex) {
        if (ex.code() != orchcore::errc::invalid_argument) return 3;
    }
    return 0;
}
