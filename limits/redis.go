package limits

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/redis/go-redis/v9"
)

// redisLogger sends go-redis' messages to the gateway's logger.
type redisLogger struct{ logger log.Logger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	level.Warn(l.logger).Log("component", "redis", "msg", fmt.Sprintf(format, v...))
}

// RedisOptions configure a RedisStore.
type RedisOptions struct {
	// Address is host:port.
	Address  string
	Username string
	Password string
	DB       int
	// TLS enables TLS with this config (nil: plain TCP).
	TLS *tls.Config
	// KeyPrefix starts every key, so several gateways can share a Redis.
	KeyPrefix string
	// Timeout bounds each command (dial, read, write); default 1s.
	Timeout time.Duration
	// PoolSize is the connection pool size; 0 uses go-redis' default.
	PoolSize int
	// Logger receives the client library's own messages (dial failures);
	// nil leaves them on stderr.
	Logger log.Logger
}

// RedisStore shares budget state across replicas. Each check is one
// round trip running a Lua script, so the check-and-record is atomic and
// N replicas enforce a budget once.
//
// Keys (prefix + kind + ":" + cluster ID):
//   - series:<id>  sorted set, member = 8-byte series hash, score = last seen (ms)
//   - samples:<id> hash {tokens, ts}: the token bucket
//   - upload:<id>  string with a PX expiry: the upload slot
//
// Every key expires when idle, so Redis memory follows the active fleet.
type RedisStore struct {
	client *redis.Client
	prefix string
}

// NewRedisStore connects lazily to Redis; Ping checks reachability.
func NewRedisStore(o RedisOptions) (*RedisStore, error) {
	if o.Address == "" {
		return nil, errors.New("redis: address is required")
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.Logger != nil {
		redis.SetLogger(redisLogger{o.Logger})
	}
	c := redis.NewClient(&redis.Options{
		Addr:                  o.Address,
		Username:              o.Username,
		Password:              o.Password,
		DB:                    o.DB,
		TLSConfig:             o.TLS,
		DialTimeout:           o.Timeout,
		ReadTimeout:           o.Timeout,
		WriteTimeout:          o.Timeout,
		ContextTimeoutEnabled: true,
		PoolSize:              o.PoolSize,
		MaxRetries:            1,
		DisableIdentity:       true,
		Protocol:              2,
	})
	return &RedisStore{client: c, prefix: o.KeyPrefix}, nil
}

// Ping checks that Redis answers.
func (s *RedisStore) Ping(ctx context.Context) error { return s.client.Ping(ctx).Err() }

// Close closes the connections.
func (s *RedisStore) Close() error { return s.client.Close() }

func (s *RedisStore) key(kind, cluster string) string { return s.prefix + kind + ":" + cluster }

// admitScript: KEYS[1] series set; ARGV now_ms, cutoff_ms, max, ttl_ms,
// then the series hashes. Returns a string of '1' (admitted) / '0'.
var admitScript = redis.NewScript(`
local key = KEYS[1]
local now = ARGV[1]
redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. ARGV[2])
local n = redis.call('ZCARD', key)
local max = tonumber(ARGV[3])
local out = {}
for i = 5, #ARGV do
  local m = ARGV[i]
  if redis.call('ZSCORE', key, m) then
    redis.call('ZADD', key, now, m)
    out[#out + 1] = '1'
  elseif n < max then
    redis.call('ZADD', key, now, m)
    n = n + 1
    out[#out + 1] = '1'
  else
    out[#out + 1] = '0'
  end
end
redis.call('PEXPIRE', key, ARGV[4])
return table.concat(out)
`)

// AdmitSeries implements Store.
func (s *RedisStore) AdmitSeries(ctx context.Context, cluster string, hashes []uint64, max int, window time.Duration, now time.Time, admitted []bool) (int, error) {
	ms := now.UnixMilli()
	args := make([]any, 0, 4+len(hashes))
	args = append(args, ms, ms-window.Milliseconds(), max, window.Milliseconds()+60000)
	buf := make([]byte, 8*len(hashes))
	for i, h := range hashes {
		b := buf[i*8 : i*8+8 : i*8+8]
		binary.BigEndian.PutUint64(b, h)
		args = append(args, b)
	}
	res, err := admitScript.Run(ctx, s.client, []string{s.key("series", cluster)}, args...).Text()
	if err != nil {
		return 0, fmt.Errorf("redis: admitting series: %w", err)
	}
	if len(res) != len(hashes) {
		return 0, fmt.Errorf("redis: admit script answered %d decisions for %d series", len(res), len(hashes))
	}
	refused := 0
	for i := range hashes {
		admitted[i] = res[i] == '1'
		if !admitted[i] {
			refused++
		}
	}
	return refused, nil
}

// bucketScript: KEYS[1] bucket; ARGV now_ms, rate/s, burst, n, ttl_ms.
// Returns {1, 0} when taken, {0, wait_ms} otherwise. Same rules as
// MemoryStore.TakeSamples.
var bucketScript = redis.NewScript(`
local now = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local v = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(v[1])
local ts = tonumber(v[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate / 1000)
  ts = now
end
tokens = math.min(tokens, burst)
local ok = 0
local wait = 0
if n <= tokens or tokens >= burst then
  tokens = tokens - n
  ok = 1
else
  wait = math.ceil((math.min(n, burst) - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts))
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {ok, wait}
`)

// TakeSamples implements Store.
func (s *RedisStore) TakeSamples(ctx context.Context, cluster string, n int, rate float64, burst int, now time.Time) (bool, time.Duration, error) {
	// Idle for longer than a full refill, the bucket is full again: the
	// key may expire.
	ttl := int64(float64(burst)/rate*1000) + 60000
	res, err := bucketScript.Run(ctx, s.client, []string{s.key("samples", cluster)},
		now.UnixMilli(), strconv.FormatFloat(rate, 'g', -1, 64), burst, n, ttl).Int64Slice()
	if err != nil {
		return false, 0, fmt.Errorf("redis: sample budget: %w", err)
	}
	if len(res) != 2 {
		return false, 0, fmt.Errorf("redis: bucket script answered %v", res)
	}
	return res[0] == 1, time.Duration(res[1]) * time.Millisecond, nil
}

// releaseScript deletes the upload slot only if it is still ours.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// ReserveUpload implements Store: SET NX PX holds the slot for the
// interval minus the slack IntervalLimiter allows.
func (s *RedisStore) ReserveUpload(ctx context.Context, cluster string, interval time.Duration, _ time.Time) (func(bool), time.Duration, bool, error) {
	key := s.key("upload", cluster)
	var nonce [12]byte
	rand.Read(nonce[:])
	token := hex.EncodeToString(nonce[:])
	hold := interval - uploadSlack(interval)
	ok, err := s.client.SetNX(ctx, key, token, hold).Result()
	if err != nil {
		return nil, 0, false, fmt.Errorf("redis: upload slot: %w", err)
	}
	if !ok {
		ttl, err := s.client.PTTL(ctx, key).Result()
		if err != nil {
			return nil, 0, false, fmt.Errorf("redis: upload slot: %w", err)
		}
		if ttl < 0 {
			// Expired between the two commands: one more try next time.
			ttl = time.Millisecond
		}
		return nil, ttl, false, nil
	}
	return func(succeeded bool) {
		if succeeded {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		releaseScript.Run(ctx, s.client, []string{key}, token)
	}, 0, true, nil
}

// ReplicaSeen is one gateway replica sharing this Redis, and when it last
// said so.
type ReplicaSeen struct {
	Name     string    `json:"name"`
	LastSeen time.Time `json:"last_seen"`
}

// Heartbeat records that the replica name is alive (one sorted set of
// replicas by last heartbeat; entries older than ttl are removed).
func (s *RedisStore) Heartbeat(ctx context.Context, name string, now time.Time, ttl time.Duration) error {
	key := s.prefix + "replicas"
	_, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, key, redis.Z{Score: float64(now.UnixMilli()), Member: name})
		p.ZRemRangeByScore(ctx, key, "-inf", "("+strconv.FormatInt(now.Add(-ttl).UnixMilli(), 10))
		p.PExpire(ctx, key, 2*ttl)
		return nil
	})
	return err
}

// Replicas returns the replicas whose last heartbeat is within ttl of
// now, most recent first (at most 1000).
func (s *RedisStore) Replicas(ctx context.Context, now time.Time, ttl time.Duration) ([]ReplicaSeen, error) {
	zs, err := s.client.ZRevRangeByScoreWithScores(ctx, s.prefix+"replicas", &redis.ZRangeBy{
		Min: strconv.FormatInt(now.Add(-ttl).UnixMilli(), 10), Max: "+inf", Count: 1000,
	}).Result()
	if err != nil {
		return nil, err
	}
	out := make([]ReplicaSeen, 0, len(zs))
	for _, z := range zs {
		name, _ := z.Member.(string)
		out = append(out, ReplicaSeen{Name: name, LastSeen: time.UnixMilli(int64(z.Score))})
	}
	return out, nil
}
