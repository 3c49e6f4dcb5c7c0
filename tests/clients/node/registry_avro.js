#!/usr/bin/env node
// Drives @kafkajs/confluent-schema-registry with kafkajs for tests/clients/test_schema_registry.py:
// registers an Avro schema with the registry, produces the encoded order events, consumes them
// back and decodes them (the decoder fetches the schema by the id in each record's header).
//
// Reads {"brokers": [...], "registry": "http://...", "topic": "...", "schema": "<avro json>",
// "events": [...]} on stdin; prints {"id": <schema id>, "decoded": [...], "raw": [<b64>...]}.
'use strict'

const { Kafka, logLevel } = require('kafkajs')
const { SchemaRegistry, SchemaType } = require('@kafkajs/confluent-schema-registry')

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'

async function main () {
  const input = JSON.parse(require('fs').readFileSync(0, 'utf8'))
  const registry = new SchemaRegistry({ host: input.registry })
  const { id } = await registry.register(
    { type: SchemaType.AVRO, schema: input.schema },
    { subject: `${input.topic}-value` }
  )
  const kafka = new Kafka({ clientId: 'klamm-registry-test', brokers: input.brokers, logLevel: logLevel.NOTHING })
  const producer = kafka.producer()
  await producer.connect()
  const messages = []
  for (const event of input.events) {
    messages.push({ key: event.order_id, value: await registry.encode(id, event) })
  }
  await producer.send({ topic: input.topic, messages })
  await producer.disconnect()

  const consumer = kafka.consumer({ groupId: `g-${input.topic}` })
  await consumer.connect()
  await consumer.subscribe({ topic: input.topic, fromBeginning: true })
  const decoded = []
  const raw = []
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${decoded.length} events read in 60 s`)), 60000)
    consumer.run({
      eachMessage: async ({ message }) => {
        raw.push(message.value.toString('base64'))
        decoded.push(await registry.decode(message.value))
        if (decoded.length >= input.events.length) {
          clearTimeout(timer)
          resolve()
        }
      }
    }).catch(reject)
  })
  await consumer.disconnect()
  process.stdout.write(JSON.stringify({ id, decoded, raw }))
}

main().catch((e) => {
  process.stderr.write(`${e.stack || e}\n`)
  process.exit(1)
})
