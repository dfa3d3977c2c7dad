// Alerts for what means data is waiting on a person: messages in a -poison queue (the
// sweeper timer logs "poison: <queue> holds <n>" every run while one is not empty; Storage
// has no per-queue metric), a webhook delivery that ran out of attempts (the deliver stage
// logs "deliver: dead"), and a drop event Event Grid could not deliver.
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
          query: 'AppTraces | where Message startswith "poison: " | parse Message with "poison: " queue " holds " depth:long'
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
          query: 'AppTraces | where Message == "deliver: dead"'
          timeAggregation: 'Count'
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
