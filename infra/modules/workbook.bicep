// An Azure Monitor workbook over the pipeline: invocations and failures per stage, poison
// moves, queue depth, webhook delivery outcomes and batch-drop events.
param location string
param tags object
param environmentName string
param workspaceId string
param storageAccountId string
param eventGridTopicId string

var content = replace(replace(replace(loadTextContent('workbook.json'), '{queueServiceId}', '${storageAccountId}/queueServices/default'), '{eventGridTopicId}', eventGridTopicId), '{workspaceId}', workspaceId)

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, environmentName, 'pipeline-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'fhir-intake pipeline (${environmentName})'
    category: 'workbook'
    sourceId: workspaceId
    serializedData: content
  }
}
