#!/usr/bin/env node
// Drives kafkajs 2.2.4 for the pytest suite (tests/clients/test_kafkajs.py,
// test_kafkajs_cluster_admin.py, test_transactions.py).
//
// Reads a JSON program on stdin:
//   {"brokers": ["127.0.0.1:PORT"], "steps": [{"op": "...", ...}, ...]}
// with optional "ssl": {"ca": "<PEM file>"} and "sasl": {"mechanism", "username", "password"}
// for secured listeners (tests/clients/test_security.py).
// runs the steps in order and prints {"results": [...]} on stdout, one entry
// per step: {"ok": true, "result": ...} or {"ok": false, "error": {...}}.
// kafkajs' own log lines go to stderr, so stdout stays pure JSON.
//
// Binary data crosses the JSON boundary as {"b64": "..."}; plain strings are
// UTF-8; null stays null. Messages read back always carry b64 keys/values.
'use strict'

const { Kafka, logLevel, ConfigResourceTypes, CompressionTypes, CompressionCodecs } = require('kafkajs')
const SnappyCodec = require('kafkajs-snappy')
const LZ4Codec = require('kafkajs-lz4')

// kafkajs has gzip built in; snappy and lz4 come from their codec packages.
CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec
CompressionCodecs[CompressionTypes.LZ4] = new LZ4Codec().codec
const COMPRESSION = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
}
const Cluster = require('kafkajs/src/cluster')
const { createLogger } = require('kafkajs/src/loggers')
const defaultSocketFactory = require('kafkajs/src/network/socketFactory')

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'

const stderrLogCreator = () => ({ namespace, level, label, log }) => {
  const { message, ...extra } = log
  process.stderr.write(`[kafkajs ${label} ${namespace}] ${message} ${JSON.stringify(extra)}\n`)
}

function decodeData (v) {
  if (v === null || v === undefined) return v === undefined ? undefined : null
  if (typeof v === 'object' && v.b64 !== undefined) return Buffer.from(v.b64, 'base64')
  if (typeof v === 'object' && v.repeat !== undefined) {
    // {"repeat": "x", "count": N} builds large values without shipping them through JSON
    return Buffer.alloc(v.count, v.repeat)
  }
  if (typeof v === 'object' && v.pattern !== undefined) {
    // {"pattern": N}: N bytes, byte i = (i * 31 + 7) % 251 (the tests compute the same)
    const b = Buffer.alloc(v.pattern)
    for (let i = 0; i < v.pattern; i++) b[i] = (i * 31 + 7) % 251
    return b
  }
  return Buffer.from(String(v), 'utf8')
}

function encodeData (b) {
  if (b === null || b === undefined) return null
  return { b64: Buffer.from(b).toString('base64') }
}

function errorInfo (e) {
  const info = {
    name: e && e.name,
    type: e && e.type,
    code: e && e.code,
    message: e && e.message ? String(e.message).slice(0, 2000) : String(e),
    retriable: e && e.retriable,
  }
  if (e && e.topic !== undefined) info.topic = e.topic // per-partition admin errors
  if (e && e.partition !== undefined) info.partition = e.partition
  if (e && Array.isArray(e.errors)) info.errors = e.errors.map(errorInfo)
  if (e && e.originalError) info.originalError = errorInfo(e.originalError)
  if (e && e.cause) info.cause = errorInfo(e.cause)
  return info
}

function toMessages (msgs) {
  return msgs.map(m => {
    const out = { value: decodeData(m.value === undefined ? null : m.value) }
    if (m.key !== undefined) out.key = decodeData(m.key)
    if (m.partition !== undefined) out.partition = m.partition
    if (m.timestamp !== undefined) out.timestamp = String(m.timestamp)
    if (m.headers) {
      out.headers = {}
      for (const [k, v] of Object.entries(m.headers)) {
        out.headers[k] = Array.isArray(v) ? v.map(decodeData) : decodeData(v)
      }
    }
    return out
  })
}

function resourceType (t) {
  const k = String(t).toUpperCase()
  if (ConfigResourceTypes[k] === undefined) throw new Error(`unknown resource type ${t}`)
  return ConfigResourceTypes[k]
}

async function withAdmin (kafka, fn) {
  const admin = kafka.admin({ retry: { retries: 3 } })
  await admin.connect()
  try {
    return await fn(admin)
  } finally {
    await admin.disconnect()
  }
}

// Reads records of one partition with kafkajs' own Fetch request/decoder (the
// same code path its consumer uses), without a consumer group.
async function fetchPartition (brokers, step) {
  const cluster = new Cluster({
    logger: createLogger({ level: logLevel.WARN, logCreator: stderrLogCreator }),
    socketFactory: defaultSocketFactory(),
    brokers,
    clientId: 'klamm-tests-kjs-fetch',
    connectionTimeout: 3000,
    requestTimeout: 30000,
    enforceRequestTimeout: true,
    metadataMaxAge: 300000,
    allowAutoTopicCreation: false,
    maxInFlightRequests: null,
    isolationLevel: 1,
    retry: { retries: 5 },
  })
  await cluster.connect()
  try {
    await cluster.addTargetTopic(step.topic)
    await cluster.refreshMetadata()
    const partition = step.partition || 0
    const leaders = cluster.findLeaderForPartitions(step.topic, [partition])
    const nodeId = Object.keys(leaders)[0]
    const broker = await cluster.findBroker({ nodeId })
    let offset = BigInt(step.offset || 0)
    const until = step.untilOffset !== undefined ? BigInt(step.untilOffset) : null
    const maxRecords = step.maxRecords || 1000000
    const deadline = Date.now() + (step.timeoutMs || 20000)
    const messages = []
    let highWatermark = null
    let logStartOffset = null
    let fetches = 0
    while (Date.now() < deadline && fetches < 1000) {
      fetches++
      const resp = await broker.fetch({
        replicaId: -1,
        isolationLevel: 1,
        maxWaitTime: step.maxWaitTime || 500,
        minBytes: 1,
        maxBytes: step.maxBytes || 10485760,
        topics: [{ topic: step.topic, partitions: [{ partition, fetchOffset: offset.toString(), maxBytes: step.partitionMaxBytes || 1048576 }] }],
      })
      const p = resp.responses[0].partitions[0]
      if (p.errorCode !== 0) throw new Error(`fetch error code ${p.errorCode}`)
      highWatermark = p.highWatermark
      logStartOffset = p.logStartOffset
      for (const m of p.messages) {
        if (BigInt(m.offset) < offset) continue // a batch may start before the fetch offset
        if (m.isControlRecord) continue
        const headers = {}
        for (const [k, v] of Object.entries(m.headers || {})) {
          headers[k] = Array.isArray(v) ? v.map(encodeData) : encodeData(v)
        }
        messages.push({ offset: m.offset, key: encodeData(m.key), value: encodeData(m.value), headers, timestamp: m.timestamp })
        offset = BigInt(m.offset) + 1n
      }
      if (messages.length >= maxRecords) break
      if (until !== null && offset >= until) break
      if (until === null && BigInt(highWatermark) <= offset) break
    }
    return { messages: messages.slice(0, maxRecords), highWatermark, logStartOffset, fetches }
  } finally {
    await cluster.disconnect()
  }
}

// Group-based consumption (needs FindCoordinator/JoinGroup/SyncGroup/...):
// subscribe, run eachMessage until `count` messages or the deadline, commit, leave.
async function consumeGroup (kafka, step) {
  const consumer = kafka.consumer({
    groupId: step.groupId,
    // kafkajs reads read_committed unless told otherwise.
    readUncommitted: !!step.readUncommitted,
    sessionTimeout: 10000,
    rebalanceTimeout: 10000,
    heartbeatInterval: 1000,
    maxWaitTimeInMs: 500,
    retry: { retries: 3 },
  })
  const messages = []
  await consumer.connect()
  try {
    await consumer.subscribe({ topics: [step.topic], fromBeginning: step.fromBeginning !== false })
    let done
    const finished = new Promise(resolve => { done = resolve })
    await consumer.run({
      autoCommit: true,
      eachMessage: async ({ topic, partition, message }) => {
        if (messages.length >= step.count) return
        messages.push({ partition, offset: message.offset, key: encodeData(message.key), value: encodeData(message.value) })
        if (messages.length >= step.count) done()
      },
    })
    const timer = setTimeout(done, step.timeoutMs || 30000)
    await finished
    clearTimeout(timer)
  } finally {
    await consumer.disconnect()
  }
  return { messages }
}

// A transactional producer (transactionalId) running step.transactions in
// order: each sends its batches ({topic, messages}), optionally commits
// consumer offsets in the transaction (sendOffsets: {consumerGroupId, topics}),
// then ends with end: 'commit' (default), 'abort', or 'open' (left running:
// the producer disconnects without ending it, for the coordinator's timeout).
async function runTransactions (kafka, step) {
  const producer = kafka.producer({
    transactionalId: step.transactionalId,
    idempotent: true,
    maxInFlightRequests: 1,
    transactionTimeout: step.transactionTimeout || 60000,
    retry: { retries: 5 },
  })
  await producer.connect()
  const results = []
  try {
    for (const t of step.transactions) {
      const txn = await producer.transaction()
      const sent = []
      try {
        for (const b of t.sends || []) {
          sent.push(await txn.send({ topic: b.topic, acks: -1, messages: toMessages(b.messages) }))
        }
        if (t.sendOffsets) await txn.sendOffsets(t.sendOffsets)
      } catch (e) {
        await txn.abort().catch(() => {})
        throw e
      }
      if (t.end === 'abort') await txn.abort()
      else if (t.end !== 'open') await txn.commit()
      results.push({ sent, end: t.end || 'commit' })
    }
    return results
  } finally {
    await producer.disconnect()
  }
}

async function runStep (kafka, brokers, step) {
  switch (step.op) {
    case 'createTopics':
      return withAdmin(kafka, admin => admin.createTopics({
        validateOnly: !!step.validateOnly,
        waitForLeaders: step.waitForLeaders !== false,
        timeout: step.timeout || 10000,
        topics: step.topics.map(t => ({
          topic: t.topic,
          numPartitions: t.numPartitions,
          replicationFactor: t.replicationFactor,
          configEntries: Object.entries(t.configs || {}).map(([name, value]) => ({ name, value: String(value) })),
        })),
      }))
    case 'listTopics':
      return withAdmin(kafka, admin => admin.listTopics())
    case 'fetchTopicMetadata':
      return withAdmin(kafka, admin => admin.fetchTopicMetadata(step.topics ? { topics: step.topics } : undefined))
    case 'describeCluster':
      return withAdmin(kafka, admin => admin.describeCluster())
    case 'deleteTopics':
      return withAdmin(kafka, admin => admin.deleteTopics({ topics: step.topics, timeout: step.timeout || 10000 }))
    case 'createPartitions':
      return withAdmin(kafka, admin => admin.createPartitions({
        validateOnly: !!step.validateOnly,
        topicPartitions: step.topicPartitions,
      }))
    case 'describeConfigs':
      return withAdmin(kafka, admin => admin.describeConfigs({
        includeSynonyms: !!step.includeSynonyms,
        resources: step.resources.map(r => ({ type: resourceType(r.type), name: r.name, configNames: r.configNames })),
      }))
    case 'alterConfigs':
      return withAdmin(kafka, admin => admin.alterConfigs({
        validateOnly: !!step.validateOnly,
        resources: step.resources.map(r => ({
          type: resourceType(r.type),
          name: r.name,
          configEntries: Object.entries(r.configs).map(([name, value]) => ({ name, value: String(value) })),
        })),
      }))
    case 'alterPartitionReassignments':
      // topics: [{topic, partitionAssignment: [{partition, replicas}]}]; resolves to nothing
      return withAdmin(kafka, admin => admin.alterPartitionReassignments({ topics: step.topics, timeout: step.timeout || 10000 }))
    case 'listPartitionReassignments':
      // topics: [{topic, partitions}], or absent for every running reassignment
      return withAdmin(kafka, admin => admin.listPartitionReassignments({ topics: step.topics || null, timeout: step.timeout || 10000 }))
    case 'fetchTopicOffsets':
      return withAdmin(kafka, admin => admin.fetchTopicOffsets(step.topic))
    case 'fetchTopicOffsetsByTimestamp':
      return withAdmin(kafka, admin => admin.fetchTopicOffsetsByTimestamp(step.topic, step.timestamp))
    case 'produce': {
      const producer = kafka.producer({
        allowAutoTopicCreation: step.allowAutoTopicCreation !== false,
        idempotent: !!step.idempotent,
        maxInFlightRequests: step.idempotent ? 1 : undefined,
        retry: { retries: step.retries === undefined ? 5 : step.retries },
      })
      await producer.connect()
      try {
        const results = []
        for (const batch of (step.batches || [step.messages])) {
          const r = await producer.send({
            topic: step.topic,
            acks: step.acks === undefined ? -1 : step.acks,
            timeout: step.timeout || 30000,
            compression: COMPRESSION[step.compression || 'none'],
            messages: toMessages(batch),
          })
          results.push(r)
        }
        return step.batches ? results : results[0]
      } finally {
        await producer.disconnect()
      }
    }
    case 'transactions':
      return runTransactions(kafka, step)
    case 'fetch':
      return fetchPartition(brokers, step)
    case 'consumeGroup':
      return consumeGroup(kafka, step)
    default:
      throw new Error(`unknown op ${step.op}`)
  }
}

async function main () {
  const chunks = []
  for await (const c of process.stdin) chunks.push(c)
  const prog = JSON.parse(Buffer.concat(chunks).toString('utf8'))
  const kafka = new Kafka({
    clientId: 'klamm-tests-kjs',
    brokers: prog.brokers,
    connectionTimeout: 3000,
    requestTimeout: 30000,
    logLevel: logLevel.WARN,
    logCreator: stderrLogCreator,
    retry: { retries: 5, initialRetryTime: 200 },
    ssl: prog.ssl ? { ca: [require('fs').readFileSync(prog.ssl.ca)], servername: 'localhost' } : undefined,
    sasl: prog.sasl || undefined,
  })
  const results = []
  for (const step of prog.steps) {
    try {
      const result = await runStep(kafka, prog.brokers, step)
      results.push({ ok: true, result: result === undefined ? null : result })
    } catch (e) {
      results.push({ ok: false, error: errorInfo(e) })
    }
  }
  const out = JSON.stringify({ results }, (k, v) => (typeof v === 'bigint' ? v.toString() : v)) + '\n'
  // stdout is a pipe: exit only once the whole (possibly multi-MB) line is written
  await new Promise(resolve => process.stdout.write(out, resolve))
}

const hardTimeout = setTimeout(() => {
  process.stderr.write('kjs.js: hard timeout (240 s), exiting\n')
  process.exit(3)
}, 240000)
hardTimeout.unref()

main().then(() => process.exit(0), e => {
  process.stderr.write(`kjs.js: ${e && e.stack ? e.stack : e}\n`)
  process.exit(2)
})
