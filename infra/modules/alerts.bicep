// Alerts for what means data is waiting on a person, read from the app's OpenTelemetry
// metrics (shared/platform/telemetry.py, in AppMetrics): messages in a -poison queue (the
// sweeper timer records the fhir_intake.queue.poison_depth gauge every run; Storage has no
// per-queue metric), a webhook delivery that ran out of attempts (fhir_intake.deliveries
// with outcome dead), and a drop event Event Grid could not deliver.
param namePrefix string
param location string
param tags object
param alertEmail string
param workspaceId string
param eventGridTopicId string

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {
  name: 'ag-${namePrefix}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'fhirintake'
    enabled: true
    emailReceivers: [
      {
        name: 'operator'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

var actionGroups = empty(alertEmail) ? [] : [
  actionGroup.id
]

resource poisonDepth 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: 'alert-poison-depth-${namePrefix}'
  location: location
  tags: tags
  properties: {
    displayName: 'fhir-intake: messages waiting in a poison queue'
    description: 'A stage failed on a message five times; it waits in <queue>-poison. Fix the cause, then: intake replay. Resolves when the queue is empty.'
    severity: 1
    enabled: true
    scopes: [
      workspaceId
    ]
    evaluationFrequency: 'PT5M'
    // Two sweeper runs (INTAKE_SWEEP_SCHEDULE, every 5 minutes by default).
    windowSize: 'PT10M'
    criteria: {
      allOf: [
        {
          query: 'AppMetrics | where Name == "fhir_intake.queue.poison_depth" | extend queue = tostring(Properties["fhir_intake.queue"]) | project TimeGenerated, queue, depth = Sum'
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'depth'
          dimensions: [
            {
              name: 'queue'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: actionGroups
    }
  }
}

resource deadDeliveries 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: 'alert-dead-deliveries-${namePrefix}'
  location: location
  tags: tags
  properties: {
    displayName: 'fhir-intake: webhook deliveries dead-lettered'
    description: 'A subscriber did not accept an event after every retry; the subscription shows status error. Fix the endpoint, then replay.'
    severity: 2
    enabled: true
    scopes: [
      workspaceId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: 'AppMetrics | where Name == "fhir_intake.deliveries" and tostring(Properties["fhir_intake.outcome"]) == "dead" | project TimeGenerated, dead = Sum'
          timeAggregation: 'Total'
          metricMeasureColumn: 'dead'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    actions: {
      actionGroups: actionGroups
    }
  }
}

resource deadDropEvents 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: 'alert-drop-events-${namePrefix}'
  location: 'global'
  tags: tags
  properties: {
    description: 'Event Grid could not put a BlobCreated event for ingest-drop on the blob-created queue; the event is in eventgrid-deadletter and the file was not processed.'
    severity: 1
    enabled: true
    scopes: [
      eventGridTopicId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'dead-lettered'
          metricName: 'DeadLetteredCount'
          timeAggregation: 'Total'
          operator: 'GreaterThan'
          threshold: 0
        }
      ]
    }
    autoMitigate: true
    actions: [for id in actionGroups: {
      actionGroupId: id
    }]
  }
}
