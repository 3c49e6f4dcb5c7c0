#!/usr/bin/env node
// A transactional kafkajs 2.2.4 producer: writes a batch of orders to
// `orders_raw` in one transaction, so read_committed consumers (the order
// processor, kafkajs consumers by default) see all of them or none.
//
//   node transactional_producer.js [--brokers 127.0.0.1:9092] [--count 10] [--abort]
//
// With --abort the transaction is aborted after sending: the records are in
// the log but never visible to read_committed consumers.
'use strict'

const { Kafka, logLevel } = require('kafkajs')

function arg (name, dflt) {
  const i = process.argv.indexOf(`--${name}`)
  if (i < 0) return dflt
  if (typeof dflt === 'boolean') return true
  return process.argv[i + 1]
}

async function main () {
  const brokers = String(arg('brokers', '127.0.0.1:9092')).split(',')
  const count = Number(arg('count', '10'))
  const abort = arg('abort', false)
  const first = Number(arg('first-id', '1'))
  const kafka = new Kafka({ clientId: 'orders-generator', brokers, logLevel: logLevel.WARN })
  const producer = kafka.producer({
    transactionalId: String(arg('transactional-id', 'orders-generator')),
    idempotent: true, // required for transactions
    maxInFlightRequests: 1,
  })
  await producer.connect()
  try {
    const messages = []
    for (let i = first; i < first + count; i++) {
      const order = { order_id: i, customer: `c-${i % 3}`, quantity: (i % 4) + 1, unit_price: 2.5 }
      messages.push({ key: order.customer, value: JSON.stringify(order) })
    }
    const txn = await producer.transaction()
    try {
      await txn.send({ topic: 'orders_raw', acks: -1, messages })
      if (abort) {
        await txn.abort()
        console.log(`aborted ${count} orders`)
      } else {
        await txn.commit()
        console.log(`committed ${count} orders`)
      }
    } catch (e) {
      await txn.abort().catch(() => {})
      throw e
    }
  } finally {
    await producer.disconnect()
  }
}

main().catch(e => {
  console.error(e)
  process.exit(1)
})
